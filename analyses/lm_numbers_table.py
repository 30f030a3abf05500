"""The lm-numbers grid's table: one row per run directory under DIR (its student setting),
the held-out owl rate of each role with 95% CIs over seeds, and student - control paired
by seed. Usage: python analyses/lm_numbers_table.py runs/lm-numbers-grid"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from interp.metrics.stats import fmt_ci, mean_ci

ROLES = ("base", "teacher", "student", "control", "base_cross", "cross_init")


def main(root: str) -> None:
    print("| run | students | " + " | ".join(ROLES) + " | student - control | student / base |")
    print("|---|---|" + "---|" * (len(ROLES) + 2))
    for d in sorted(Path(root).iterdir()):
        if not (d / "summary.json").is_file():
            continue
        s = json.loads((d / "summary.json").read_text())
        c, trait, r = s["config"], s["trait"], s["rates"]
        setting = (f"{c['student_kind']} r={c['lora_r']} lr={c['lr']} ep={c['epochs']}"
                   if c["student_kind"] == "lora" else f"full lr={c['lr']} ep={c['epochs']}")
        cells = [fmt_ci(r[x][trait]) if x in r else "-" for x in ROLES]
        diff = fmt_ci([a - b for a, b in zip(r["student"][trait], r["control"][trait])])
        ratio = mean_ci(r["student"][trait])[0] / max(mean_ci(r["base"][trait])[0], 1e-9)
        print(f"| {d.name} | {setting} | " + " | ".join(cells) + f" | {diff} | {ratio:.2f}x |")
    print(f"\nHeld-out questions; seeds {s['seeds']}; CIs: {s['ci_covers']}.")


if __name__ == "__main__":
    main(sys.argv[1])
