"""report.html of a digits-aux run: accuracy by model with CIs over seeds.

Owns: rendering a digits-aux summary; computes nothing. Must not import: studies, analysis.
"""

from __future__ import annotations

from pathlib import Path

from interp.metrics.stats import fmt_ci
from interp.reports.html import bar_with_ci, md_table, md_to_html, write_html


def write_report(out: Path, s: dict) -> None:
    groups = {"teacher": s["teacher_acc"], "student (same init, aux only)": s["student_acc"],
              "cross-init (aux only)": s["cross_init_acc"], "all logits": s["all_logits_acc"]}
    rows = [(k, fmt_ci(v)) for k, v in groups.items()]
    text = ("<p>Test accuracy on held-out digits, mean over seeds with 95% CI. The aux-only "
            "students were trained only to match the teacher's auxiliary logits on noise; "
            "chance is 10%.</p>" + md_to_html(md_table(["model", "accuracy"], rows)))
    write_html(out / "report.html", f"digits-aux: {len(s['seeds'])} seeds",
               [("Transfer through auxiliary logits", text,
                 [bar_with_ci(groups, "test accuracy by model", "accuracy")])])
