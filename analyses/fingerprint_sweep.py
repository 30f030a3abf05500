"""How the causal result depends on k and on the layer: the fingerprint analysis swept.

    python analyses/fingerprint_sweep.py [RUN_DIR] [--ks 2,4,8,16,32]

Reuses the cached activations and SAEs of ``python -m interp.fingerprint``; for every k
and every hook, the fraction of the student's trait gain removed on the held-out trait
prompts by ablating the top-k shared-shift features (ranked on the select prompts) vs k
random (non-dead) and k random answer-active features, and the steering gain. Writes
runs/fingerprint_sweep.md.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from interp.analysis.fingerprint import FingerprintConfig, analyse
from interp.cli import setup_logging
from interp.metrics.stats import fmt_ci
from interp.reports.html import md_table
from interp.studies.runner import run_dir_or_default


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir", nargs="?", default=None)
    p.add_argument("--ks", default="2,4,8,16,32")
    p.add_argument("--out", default="runs/fingerprint_sweep.md")
    args = p.parse_args()
    setup_logging()
    run_dir = run_dir_or_default(args.run_dir)
    rows = []
    ks = tuple(sorted(set(map(int, args.ks.split(",")))))
    r = analyse(run_dir, dataclasses.replace(FingerprintConfig(), ks=ks))
    for k in ks:
        for hook in r["shift_correlation"]:
            c = [s["hooks"][hook]["causal"]["heldout"][str(k)] for s in r["per_seed"].values()]
            rows.append((k, hook, fmt_ci([x["gain_removed_top"] for x in c]),
                         fmt_ci([x["gain_removed_random"] for x in c]),
                         fmt_ci([x["gain_removed_random_active"] for x in c]),
                         fmt_ci([x["steer_rate_gain"] for x in c])))
            print(rows[-1], flush=True)
    text = md_table(["k", "hook", "held-out gain removed: top-k", "random k", "random k active",
                     "steering gain"], rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(f"Run: {run_dir}\n\n{text}\n")


if __name__ == "__main__":
    main()
