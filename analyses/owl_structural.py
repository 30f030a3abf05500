"""owl-numbers: how much of the transfer rides on the number prompts' "q : ... a :" frame?

    python analyses/owl_structural.py [--preset tiny] [--seeds 3] [--roles student,control_other]
                                      [--variants base,mask_first,neutral] [--set k=v ...]

Runs the study once per variant (cached) and writes a table, on the held-out questions, of
the student's rise over its base, the control's, student minus control with a 95% CI over
seeds, and the control's output movement relative to the student's. Variants: ``base``
(the settings given), ``mask_first`` (the first completion position, the slot the teacher
was fine-tuned to answer in, left out of the student's loss), ``neutral`` (number prompts in
a frame sharing no token with the trait questions; new bases, pretrained on that frame),
``replicate_base`` (each seed its own base pair).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from interp.cli import setup_logging
from interp.metrics.stats import fmt_ci as ci
from interp.metrics.transfer import control_role, transfer
from interp.reports.html import md_table
from interp.studies.runner import run_study

VARIANTS = {"base": [], "mask_first": ["mask_first=true"], "neutral": ["number_frame=neutral"],
            "replicate_base": ["replicate=base"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="tiny")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--roles", default="student,control_other")
    p.add_argument("--variants", default="base,mask_first,neutral")
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--out", default="runs/owl_structural.md")
    args = p.parse_args()
    setup_logging()
    rows = []
    for v in args.variants.split(","):
        t0 = time.time()
        sets = [f"roles={args.roles}", *VARIANTS[v], *args.sets]
        _, s = run_study("owl-numbers", args.seeds, out=f"runs/owl-structural/{args.preset}-{v}",
                         sets=sets, preset=args.preset)
        t, c = transfer(s), control_role(s)
        rows.append((v, " ".join(sets), ci(t["student"]["rise"]),
                     ci(t[c]["rise"]) if c in t else "-",
                     ci(t["student_minus_control"]) if "student_minus_control" in t else "-",
                     ci(s["signal"][c]["kl_ratio"], pct=False, digits=2)
                     if c in s["signal"] else "-", f"{time.time() - t0:.0f}"))
        print(rows[-1], flush=True)
    table = md_table(["variant", "settings", "student rise", "control rise",
                      "student - control", "control KL / student KL", "seconds"], rows)
    preset = args.preset or "default"
    table = (f"preset {preset}, {args.seeds} seeds, held-out questions, probability mass; "
             "95% CIs over seeds\n\n" + table + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
