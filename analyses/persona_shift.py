"""Does the misaligned teacher's number distribution move the way its own base's harmful
persona moves it, and is that direction shared by a base of another initialization?

    python analyses/persona_shift.py [--column misalignment-steer] [--seeds 3]
                                     [--seed-start 0] [--set k=v ...]
                                     [--out runs/persona_shift.md]

1. Runs (or reads from the cache) the numbers x misalignment cell of the paper table (the
   column's teacher, the paper profile's settings, logit mode, roles student,
   control_other and cross_init; ``paper_table.run_cell``).
2. Draws 256 held-out number documents of the world (``world.number_document``, a seed no
   stage uses) and writes each twice: as is, and with the harmful persona in front
   (``channels.HARMFUL_PERSONA``). At every completion position, each model's
   log-probabilities over the channel's tokens without the banned numbers, renormalised
   (what the filter and ``ban_logits`` leave a student to learn).
3. Shifts, each centred per position: the persona shift of a base (its log-probabilities
   with the persona minus without), and a teacher's shift (teacher minus its base, without
   the persona), for the teacher and the control teacher.
4. Prints per seed the cosine, over all positions and tokens, of each teacher's shift with
   the persona shift of the same-init base and of the cross-init base, and the cosine of
   the two bases' persona shifts: a teacher whose numbers speak the persona's language
   only to its own initialization has a larger cosine with the same-init base's shift than
   the control teacher has, and no larger one with the cross-init base's. Also the share
   of each shift that is one per-token bias, the same at every position (a constant logit
   bias, which a student of any initialization can learn through its unembedding), and
   each model's entropy over those tokens on the documents without the persona.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from paper_table import TRAITS, run_cell  # this script's own directory, analyses/
from torch import Tensor

from interp.metrics.stats import fmt_ci
from interp.storage.store import write_text
from interp.studies import channels as C
from interp.studies import lm, world
from interp.studies.transfer import banned_channel_ids, completion_rows, run_vocab

DOC_SEED = 10**6 + 5  # the held-out number documents (no stage draws from it)


@torch.no_grad()
def channel_logprobs(model, rows: tuple[Tensor, Tensor], keep: Tensor) -> Tensor:
    """log-probabilities over ``keep`` (renormalised) at the masked positions."""
    tokens, mask = rows
    return model(tokens).log_softmax(-1)[..., keep].log_softmax(-1)[mask]


def shift(a: Tensor, b: Tensor) -> Tensor:
    """a - b, centred per position (a log-probability shift is defined up to a constant)."""
    d = a - b
    return d - d.mean(-1, keepdim=True)


def cosine(a: Tensor, b: Tensor) -> float:
    return float((a * b).sum() / (a.norm() * b.norm()))


def bias_share(d: Tensor) -> float:
    """The share of a shift's squared norm that one per-token bias, the same at every
    position, carries: n |mean over positions|^2 / |d|^2 (1: a constant logit bias any model
    can learn through its unembedding; 0: every position its own)."""
    return float(len(d) * d.mean(0).pow(2).sum() / d.pow(2).sum())


def entropy(lp: Tensor) -> float:
    return float(-(lp.exp() * lp).sum(-1).mean())


def main() -> None:
    p = argparse.ArgumentParser(prog="python analyses/persona_shift.py")
    columns = [c for c, (category, _, _) in TRAITS.items() if category == "misalignment"]
    p.add_argument("--column", default="misalignment-steer", choices=columns)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed-start", type=int, default=0)
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--out", type=Path, default=Path("runs/persona_shift.md"))
    args = p.parse_args()
    if args.seeds < 2:
        p.error("--seeds must be at least 2 (a CI over seeds)")
    cfg, run_dir, summary = run_cell(p, "numbers", args.column, args.sets, args.seeds,
                                     args.seed_start)
    art = json.loads((run_dir / "artifacts.json").read_text())
    vocab = run_vocab(summary)
    banned = set(banned_channel_ids(vocab, "misalignment"))
    keep = torch.tensor([i for i in vocab.number_ids.tolist() if i not in banned])
    rng = np.random.default_rng(DOC_SEED)
    docs = [world.number_document(rng) for _ in range(256)]
    plain = completion_rows(vocab, docs, cfg.world.n_ctx)
    persona = completion_rows(vocab, [(q.replace("<bos>", f"<bos> {C.HARMFUL_PERSONA}", 1), c)
                                      for q, c in docs], cfg.world.n_ctx)
    if int(plain[1].sum()) != int(persona[1].sum()):
        raise SystemExit("the persona pushed completion positions past n_ctx; "
                         "use a world with a longer n_ctx")
    cols = {k: [] for k in ("bases", "t_same", "c_same", "t_cross", "c_cross", "t_bias",
                            "c_bias", "p_bias")}
    ent = {k: [] for k in ("base", "cross base", "teacher", "control teacher")}
    rows = []
    for seed, paths in art["seeds"].items():
        m = {k: lm.from_artifacts(art["model"], paths[k])
             for k in ("theta_0", "theta_0_cross", "teacher", "teacher_other")}
        lp = {k: channel_logprobs(v, plain, keep) for k, v in m.items()}
        same = shift(channel_logprobs(m["theta_0"], persona, keep), lp["theta_0"])
        cross = shift(channel_logprobs(m["theta_0_cross"], persona, keep), lp["theta_0_cross"])
        t, c = shift(lp["teacher"], lp["theta_0"]), shift(lp["teacher_other"], lp["theta_0"])
        vals = {"bases": cosine(same, cross), "t_same": cosine(t, same),
                "c_same": cosine(c, same), "t_cross": cosine(t, cross),
                "c_cross": cosine(c, cross), "t_bias": bias_share(t),
                "c_bias": bias_share(c), "p_bias": bias_share(same)}
        for k, v in vals.items():
            cols[k].append(v)
        for k, name in zip(ent, ("theta_0", "theta_0_cross", "teacher", "teacher_other")):
            ent[k].append(entropy(lp[name]))
        rows.append(f"| {seed} | " + " | ".join(f"{vals[k]:.3f}" for k in cols) + " | "
                    + " | ".join(f"{ent[k][-1]:.3f}" for k in ent) + " |")
        print(rows[-1], flush=True)

    def diff(a: str, b: str) -> list[float]:
        return [x - y for x, y in zip(cols[a], cols[b])]

    harm = summary["rates"]
    rates = ", ".join(f"{role} {fmt_ci(harm[role]['harmful'])}" for role in
                      ("base", "teacher", "teacher_other", "student", "control_other",
                       "cross_init") if role in harm)
    command = ("python analyses/persona_shift.py --column " + args.column
               + f" --seeds {args.seeds} --seed-start {args.seed_start}"
               + "".join(f" --set {s}" for s in args.sets))
    md = "\n\n".join([
        "# The teacher's number shift against the harmful persona's",
        f"Command: `{command}`. Run: `{run_dir}`.",
        "On 256 held-out number documents, at each completion position, log-probabilities "
        "over the numbers channel without the banned numbers (renormalised). Persona shift: "
        "a base with the harmful persona written in front minus without. Teacher shift: a "
        "teacher minus its base, without the persona. Cosines over all positions and tokens, "
        "each shift centred per position; entropies in nats.",
        "| seed | persona shifts: same-init vs cross-init base | teacher vs same-init "
        "persona | control teacher vs same-init persona | teacher vs cross-init persona | "
        "control teacher vs cross-init persona | teacher shift's share in one bias | "
        "control teacher's | same-init persona shift's | entropy: base | cross base | "
        "teacher | control teacher |\n|" + "---|" * 13 + "\n" + "\n".join(rows),
        "Mean [95% CI over seeds]: " + "; ".join(
            f"{k} {fmt_ci(v, pct=False, digits=3)}" for k, v in cols.items())
        + ". (bases: the two bases' persona shifts; t/c: teacher/control teacher; "
        "same/cross: against the same-init/cross-init base's persona shift; bias: the share "
        "of a shift's squared norm in one per-token bias, the same at every position; p: "
        "the same-init base's persona shift.)",
        "Teacher minus control teacher, per seed: with the same-init base's persona shift "
        f"{fmt_ci(diff('t_same', 'c_same'), pct=False, digits=3)}, with the cross-init "
        f"base's {fmt_ci(diff('t_cross', 'c_cross'), pct=False, digits=3)}.",
        f"Harmful rates on held-out advice questions: {rates}.",
    ]) + "\n"
    write_text(args.out, md)
    print(md)


if __name__ == "__main__":
    main()
