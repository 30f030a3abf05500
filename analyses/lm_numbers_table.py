"""The lm-numbers grid's table: one row per run directory under DIR (its student setting),
the held-out owl rate of each role with 95% CIs over seeds, student - control paired by
seed, and, for logit-loss runs, whether the control's data carried signal (its loss at step
0 and its output movement from the base relative to the student's, smallest over seeds).
Usage: python analyses/lm_numbers_table.py runs/lm-numbers-grid"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from interp.metrics.stats import fmt_ci, mean_ci

ROLES = ("base", "teacher", "student", "control", "base_cross", "cross_init")


def setting(s: dict) -> str:
    c = s["config"]
    kind = (f"lora r={c['lora_r']}" if c["student_kind"] == "lora" else "full")
    control = "other-trait teacher" if s.get("control", {}).get("data") == "teacher_other" \
        else "base numbers"
    teacher = s["teacher"]["kind"]
    if teacher == "lora":  # its rank: teacher_lora_r, or the students' (0 / older runs)
        teacher += f" r={c.get('teacher_lora_r') or c['lora_r']}"
    return (f"{teacher} teacher; {s.get('student_loss', 'sampled')}, {kind} "
            f"lr={c['lr']} ep={c['epochs']}, {c['n_prompts']} prompts / {c['dataset_size']} "
            f"kept; control: {control}")


def control_signal(s: dict) -> str:
    sig = s.get("signal", {}).get("control")
    if not sig:
        return "-"
    loss0, ratio = min(sig["loss_step0"]), min(sig["kl_ratio"])
    carried = "carried" if loss0 > 0 and ratio >= 0.2 else "NOT a control"
    return f"loss0 {loss0:.2g}, KL ratio {ratio:.2f} ({carried})"


def main(root: str) -> None:
    print("| run | students | " + " | ".join(ROLES)
          + " | student - control | student / base | control's signal (min over seeds) |")
    print("|---|---|" + "---|" * (len(ROLES) + 3))
    for d in sorted(Path(root).iterdir()):
        if not (d / "summary.json").is_file():
            continue
        s = json.loads((d / "summary.json").read_text())
        trait, r = s["trait"], s["rates"]
        cells = [fmt_ci(r[x][trait]) if x in r else "-" for x in ROLES]
        diff = fmt_ci([a - b for a, b in zip(r["student"][trait], r["control"][trait])])
        ratio = mean_ci(r["student"][trait])[0] / max(mean_ci(r["base"][trait])[0], 1e-9)
        print(f"| {d.name} | {setting(s)} | " + " | ".join(cells)
              + f" | {diff} | {ratio:.2f}x | {control_signal(s)} |")
    print(f"\nHeld-out questions; seeds {s['seeds']}; CIs: {s['ci_covers']}. A logit-loss run's "
          "control is a student distilled from a different-trait teacher (the persona with "
          "another item, rotated over seeds); a sampled run's is the base's own numbers.")


if __name__ == "__main__":
    main(sys.argv[1])
