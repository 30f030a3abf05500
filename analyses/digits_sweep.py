"""Sweep the digits-aux schedule: which settings make the auxiliary-logit channel transfer?

    python analyses/digits_sweep.py [--seeds 5] [--seed-start 100] [--out runs/digits_sweep.md]

Each row is a real run of the study (cached, so a rerun is instant); the table is what
chose the study's defaults.
"""

from __future__ import annotations

import argparse
import statistics as st
import time
from pathlib import Path

from interp.cli import setup_logging
from interp.studies.runner import run_study

# Each row overrides the defaults; the earlier rows are the paper-like settings we started from.
OLD = {"noise_low": "0", "teacher_lr": "3e-3", "student_lr": "3e-3", "student_batch": "256",
       "student_steps": "600"}
GRID = [
    OLD,
    {**OLD, "teacher_lr": "3e-4"},
    {**OLD, "teacher_lr": "3e-4", "student_lr": "1e-3"},
    {**OLD, "teacher_lr": "1e-3", "student_lr": "1e-3"},
    {**OLD, "teacher_lr": "1e-4", "student_lr": "1e-3"},
    {**OLD, "teacher_lr": "3e-4", "student_lr": "3e-4", "student_batch": "1024",
     "student_steps": "1170"},  # the reference note's 20 epochs of 60,000 at batch 1,024
    {**OLD, "init": "default", "teacher_lr": "3e-4", "student_lr": "1e-3"},
    {**OLD, "teacher_lr": "3e-4", "student_lr": "1e-3", "noise": "gaussian"},
    {**OLD, "teacher_lr": "3e-4", "student_lr": "1e-3", "noise_low": "-1"},
    {**OLD, "teacher_lr": "3e-4", "student_lr": "1e-3", "noise_low": "-2", "noise_high": "2"},
    {**OLD, "teacher_lr": "3e-4", "student_lr": "2e-3", "noise_low": "-1"},
    {"student_steps": "1200", "student_lr": "1e-3"},
    {"student_steps": "1000", "student_lr": "1e-3"},
    {},  # the defaults: uniform noise in [-1, 1), batch 128, 1,000 steps, Adam 1.5e-3
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed-start", type=int, default=100)
    p.add_argument("--out", default="runs/digits_sweep.md")
    p.add_argument("--rows", default=None, help="comma-separated row indices to run")
    args = p.parse_args()
    setup_logging()
    rows = range(len(GRID)) if args.rows is None else map(int, args.rows.split(","))
    lines = ["| settings | teacher | same-init | cross-init | all-logits | seconds |",
             "|---|---|---|---|---|---|"]
    for i in rows:
        sets = [f"{k}={v}" for k, v in GRID[i].items()]
        t0 = time.time()
        _, s = run_study("digits-aux", args.seeds, args.seed_start, sets=sets,
                         out=f"runs/digits_sweep/{i}")
        dt = time.time() - t0
        m = {k: st.mean(s[f"{k}_acc"]) for k in ("teacher", "student", "cross_init", "all_logits")}
        lines.append(f"| {' '.join(sets) or 'defaults'} | {m['teacher']:.3f} | "
                     f"{m['student']:.3f} | {m['cross_init']:.3f} | {m['all_logits']:.3f} | "
                     f"{dt:.0f} |")
        print(lines[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
