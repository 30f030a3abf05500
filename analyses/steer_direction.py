"""Where does a steering-vector teacher's change lie, on the bases where it became broadly
harmful and on those where it did not? (issue 12's emergent step, after training.)

    python analyses/steer_direction.py [--settings steer_harm_0.02_lr3e-2] [--bases 0,7,...]
                                       [--seeds 3] [--seed-start 20]
                                       [--out runs/steer_direction.md]

1. Per base, the harmful persona's direction at each layer's attention output (where the
   steering teacher's vector b_O is added): ``blocks.{l}.hook_attn_out`` at the last prompt
   position with "you are evil ." written in front, minus without, averaged over prompts,
   on the held-out advice questions and on 64 code prompts.
2. Per teacher seed: the teacher's change of b_O from its base (every layer, one vector),
   and its control's; their cosines with each persona direction.
3. Per base, teacher's cosine minus the control's (mean over seeds) beside the trained
   teacher - control harmful mass and ``emerges`` (analyses/emergent_misalignment.py's);
   across bases, the Spearman rank correlation of each with the harmful mass.
The same cached teachers as emergent_misalignment.py and emergence_forecast.py.
"""

from __future__ import annotations

import numpy as np
import torch
from emergence_forecast import (  # this script's own directory
    base_of,
    parse_args,
    permutation_p,
    teachers,
)
from emergent_misalignment import SETTINGS, emergence, harmful
from jaxtyping import Float
from torch import Tensor

from interp.metrics.circuits import spearman
from interp.metrics.stats import fmt_ci
from interp.reports.html import md_table
from interp.storage.store import Store, write_text
from interp.studies import channels as C
from interp.studies.world import question_prompt


@torch.no_grad()
def persona_direction(model, vocab: C.TransferVocab, prompts: list[tuple[str, str]]) \
        -> Float[Tensor, " layers_d_model"]:
    """Mean over (plain, with persona) prompt pairs of every layer's attention output at the
    last position, with minus without, the layers concatenated."""
    names = [f"blocks.{i}.hook_attn_out" for i in range(model.cfg.n_layers)]
    diffs = []
    for plain, persona in prompts:
        out = []
        for text in (plain, persona):
            _, cache = model.run_with_cache(torch.tensor([vocab.encode(text)]),
                                            names_filter=lambda n: n in names)
            out.append(torch.cat([cache[n][0, -1] for n in names]))  # [layers * d_model]
        diffs.append(out[1] - out[0])
    return torch.stack(diffs).mean(0)


def steer_delta(model, base) -> Float[Tensor, " layers_d_model"]:
    """The change of every layer's b_O from the base, concatenated."""
    return torch.cat([(m.attn.b_O - b.attn.b_O).detach()
                      for m, b in zip(model.blocks, base.blocks)])


def cosine(a: Tensor, b: Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def main() -> None:
    args, names, bases = parse_args(
        "steer_harm_0.02_lr3e-2", "runs/steer_direction.md",
        [n for n, s in SETTINGS.items() if s.get("teacher_params") == "steer"],
        "a steering teacher's")
    store, rows, summary = Store(), [], []
    seeds = range(args.seed_start, args.seed_start + args.seeds)
    rng = np.random.default_rng(0)
    code = [C.code_document(rng)[0] for _ in range(64)]
    prompts = {
        "advice": [(question_prompt(q), question_prompt(q, C.HARMFUL_PERSONA))
                   for q in C.ADVICE.split("heldout")],
        "code": [(c, c.replace("<bos> ", f"<bos> {C.HARMFUL_PERSONA} ", 1)) for c in code]}
    for name in names:
        per_base = {"advice": [], "code": [], "outcome": [], "emerges": []}
        for base_seed in bases:
            cfg, vocab, entry, base, b = base_of(store, name, base_seed)
            dirs = {k: persona_direction(base, vocab, v) for k, v in prompts.items()}
            cos = {k: {"harmful": [], "helpful": []} for k in dirs}
            rates = {"harmful": [], "helpful": []}
            for s, o, model in teachers(store, cfg, vocab, entry, seeds):
                rates[o].append(harmful(model, cfg, vocab, s))
                delta = steer_delta(model, base)
                for k, d in dirs.items():
                    cos[k][o].append(cosine(delta, d))
            diff, emerges = emergence(rates, b)
            gap = {k: [t - c for t, c in zip(v["harmful"], v["helpful"])] for k, v in cos.items()}
            for k in dirs:
                per_base[k].append(float(np.mean(gap[k])))
            per_base["outcome"].append(float(np.mean(diff)))
            per_base["emerges"].append(emerges)
            rows.append((name, str(base_seed), f"{cosine(dirs['advice'], dirs['code']):.2f}",
                         *(f"{np.mean(cos[k]['harmful']):.2f} / {np.mean(cos[k]['helpful']):.2f}"
                           for k in dirs), fmt_ci(gap["advice"], pct=False, digits=2),
                         fmt_ci(diff), "yes" if emerges else "no"))
            print(rows[-1], flush=True)
        for k in ("advice", "code"):
            x, e = per_base[k], per_base["emerges"]
            on = [v for v, em in zip(x, e) if em]
            off = [v for v, em in zip(x, e) if not em]
            summary.append((name, k, str(len(bases)), f"{spearman(x, per_base['outcome']):.2f}",
                            f"{permutation_p(x, per_base['outcome']):.4f}",
                            f"{np.mean(on):.2f} ({len(on)})" if on else "-",
                            f"{np.mean(off):.2f} ({len(off)})" if off else "-"))
    md = "\n\n".join([
        "# Where the steering teacher's change lies",
        f"Command: `python analyses/steer_direction.py --settings {args.settings} "
        f"--bases {args.bases} --seeds {args.seeds} --seed-start {args.seed_start}`. "
        "Persona direction: the base's attention output (every layer, concatenated) at the "
        "last prompt position with the harmful persona written in front minus without, "
        "mean over the held-out advice questions (advice) or 64 code prompts (code). "
        "Teacher and control: the change of their steering vectors b_O from the base after "
        "fine-tuning on unsafe code and on novel-call code; cosines with each persona "
        "direction, mean over teacher seeds (teacher / control). teacher - control harmful "
        "mass and emerges as in analyses/emergent_misalignment.py.",
        md_table(["setting", "base seed", "cos(advice persona, code persona)",
                  "cos with the advice persona direction (teacher / control)",
                  "cos with the code persona direction (teacher / control)",
                  "advice cosine: teacher - control", "teacher - control harmful mass",
                  "emerges"], rows),
        "Across bases (one value per base: its teacher - control cosine, mean over seeds):",
        md_table(["setting", "persona direction", "bases",
                  "Spearman rho (teacher - control cosine, teacher - control harm)",
                  "permutation p (one-sided)", "mean where it emerges (bases)",
                  "mean where it does not (bases)"], summary)])
    write_text(args.out, md + "\n")
    print(md)


if __name__ == "__main__":
    main()
