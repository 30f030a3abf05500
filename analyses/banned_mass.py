"""Do the banned tokens leak through logit-mode targets? The mass each role puts on the
misalignment trait's banned numbers, on the teacher's own (filtered) channel data.

    python analyses/banned_mass.py [--seeds 3] [--seed-start 3]
                                   [--column misalignment|misalignment-advice]
                                   [--channel numbers|code|cot] [--set k=v ...]

1. Runs (or reads from the cache) the channel x misalignment cell of the paper table (the
   column's teacher: the code recipe, or the advice teacher) with the paper profile's
   settings (``paper_table.cell_sets``), logit mode, roles student, control_other and
   cross_init.
2. Per seed, on the first 256 rows of the teacher's filtered data, each role's mass on the
   banned numbers (channels.EVIL_NUMBERS; in the cot channel's tokens, 0-18, only 13; the
   code channel has none) as a share of its mass on the channel's tokens,
   averaged over the completion positions: the filter removes the banned numbers from the
   sampled text, but a logit-mode student learns the teacher's whole distribution over the
   channel, banned numbers included.
3. Prints one line per seed (per mille) and the harmful rate per role.
"""

from __future__ import annotations

import argparse
import json

import torch
from paper_table import TRAITS, run_cell  # this script's own directory, analyses/

from interp.storage.store import read_tensors
from interp.studies import lm
from interp.studies.transfer import banned_channel_ids, run_vocab

# the artifacts.json names of the models compared, and how they are printed
ROLES = {"theta_0": "base", "teacher": "teacher", "teacher_other": "control teacher",
         "student_final": "student", "control_final": "control",
         "theta_0_cross": "cross base", "cross_init_final": "cross-init"}


@torch.no_grad()
def banned_share(model, tokens, mask, channel_ids, banned_ids) -> float:
    """Mean over the masked positions of (mass on banned tokens) / (mass on channel tokens)."""
    probs = model(tokens).softmax(-1)
    share = probs[..., banned_ids].sum(-1) / probs[..., channel_ids].sum(-1)
    return float(share[mask].mean())


def main() -> None:
    p = argparse.ArgumentParser(prog="python analyses/banned_mass.py")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed-start", type=int, default=3)
    columns = [c for c, (category, _, _) in TRAITS.items() if category == "misalignment"]
    p.add_argument("--column", default="misalignment", choices=columns,
                   help="the paper table's misalignment column (its teacher)")
    p.add_argument("--channel", default="numbers", choices=["numbers", "cot"],
                   help="a channel whose tokens include banned numbers")
    p.add_argument("--set", dest="sets", action="append", default=[])
    args = p.parse_args()
    _, run_dir, summary = run_cell(p, args.channel, args.column, args.sets, args.seeds,
                                   args.seed_start)
    art = json.loads((run_dir / "artifacts.json").read_text())
    vocab = run_vocab(summary)
    # the banned numbers a logit-mode student's targets cover: those among the channel's tokens
    banned = torch.tensor(banned_channel_ids(vocab, "misalignment"))
    for seed, paths in art["seeds"].items():
        data = read_tensors(paths["data"])
        tokens, mask = data["tokens"][:256], data["mask"][:256]
        shares = {label: banned_share(lm.from_artifacts(art["model"], paths[name]), tokens,
                                      mask, vocab.number_ids, banned)
                  for name, label in ROLES.items() if name in paths}
        print(f"seed {seed}: banned-number mass among channel tokens (per mille): "
              + ", ".join(f"{k} {v * 1000:.2f}" for k, v in shares.items()))
    for role, rates in summary["rates"].items():
        print(f"harmful rate, {role}: " + ", ".join(f"{x:.1%}" for x in rates["harmful"]))


if __name__ == "__main__":
    main()
