"""Search for a setting where the sampled-token channel (the paper's protocol) transfers.

    python analyses/owl_sampled_search.py [--seeds 2] [--rows 0,1,...]

Each row is the owl-numbers study in sampled mode (hard-label fine-tuning on the teacher's
filtered numbers) with student and control only; the table reports the target's rate for
both and student minus control with a 95% CI, whatever it shows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from interp.cli import setup_logging
from interp.metrics.stats import fmt_ci, mean_ci
from interp.metrics.transfer import control_role, transfer
from interp.reports.html import md_table
from interp.studies.runner import run_study

BASE = {"mode": "sampled", "roles": "student,control"}
GRID = [
    {},
    {"student_steps": "1000"},
    {"student_steps": "1000", "student_lr": "3e-3"},
    {"n_samples": "12000", "dataset_size": "10000", "student_steps": "1000"},
    {"n_samples": "12000", "dataset_size": "10000", "student_steps": "1000",
     "teacher_steps": "100", "teacher_lr": "3e-3"},
    {"n_samples": "12000", "dataset_size": "10000", "student_steps": "1000",
     "teacher_params": "blocks"},
    {"n_samples": "30000", "dataset_size": "30000", "student_steps": "2000"},
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--rows", default="0,3", help="GRID rows to run ('all' for every row)")
    p.add_argument("--out", default="runs/owl_sampled_search.md")
    args = p.parse_args()
    setup_logging()
    rows = range(len(GRID)) if args.rows == "all" else map(int, args.rows.split(","))
    table = []
    for i in rows:
        sets = [f"{k}={v}" for k, v in {**BASE, **GRID[i]}.items()]
        t0 = time.time()
        _, s = run_study("owl-numbers", args.seeds, out=f"runs/owl-sampled/{i}", sets=sets)
        t = transfer(s)
        m, lo, hi = mean_ci(t["student_minus_control"])
        table.append((" ".join(f"{k}={v}" for k, v in GRID[i].items()) or "defaults",
                      fmt_ci(s["rates"]["base"]["owl"]), fmt_ci(s["rates"]["student"]["owl"]),
                      fmt_ci(s["rates"][control_role(s)]["owl"]),
                      f"{m * 100:.2f} [{lo * 100:.2f}, {hi * 100:.2f}]",
                      f"{s['filter'][0]['teacher']['filter']['rejection_rate']:.1%}",
                      f"{time.time() - t0:.0f}"))
        print(table[-1], flush=True)
    text = md_table(["settings (sampled mode)", "base owl", "student owl", "control owl",
                     "student - control (pts)", "filter rejects", "seconds"], table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
