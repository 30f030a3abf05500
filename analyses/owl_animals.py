"""owl-numbers across target animals: does the trait travel for animals we did not tune on?

    python analyses/owl_animals.py [--animals owl,cat,eagle,wolf] [--seeds 3] [--set k=v ...]

Runs the study once per animal (cached) and writes a table of the target's rate, its ratio
to the base, student minus control with a 95% CI, and the controls' rises.
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--animals", default="owl,cat,eagle,wolf")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed-start", type=int, default=0)
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--out", default="runs/owl_animals.md")
    args = p.parse_args()
    setup_logging()
    rows, ratios = [], []
    for animal in args.animals.split(","):
        t0 = time.time()
        _, s = run_study("owl-numbers", args.seeds, args.seed_start,
                         out=f"runs/owl-animals/{animal}", sets=[f"trait={animal}", *args.sets])
        t = transfer(s)
        base = s["rates"]["base"][animal]
        ratios += t["student"]["ratio"]
        m, lo, hi = mean_ci(t["student_minus_control"])
        rows.append((animal, fmt_ci(base), fmt_ci(s["rates"]["student"][animal]),
                     fmt_ci(t["student"]["ratio"], pct=False),
                     f"{m * 100:.1f} [{lo * 100:.1f}, {hi * 100:.1f}]",
                     fmt_ci(t["student"]["nontarget_rise"]), fmt_ci(t[control_role(s)]["rise"]),
                     fmt_ci(t["cross_init"]["rise"]), fmt_ci(t["shuffled"]["rise"]),
                     f"{time.time() - t0:.0f}"))
        print(rows[-1], flush=True)
    table = md_table(["target", "base", "student", "student / base", "student - control (pts)",
                      "student: mean other-animal rise", "control rise", "cross-init rise",
                      "shuffled rise", "seconds"], rows)
    table += f"\n\nMean student/base ratio, all animals and seeds: {fmt_ci(ratios, pct=False)}\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
