"""report.html of an owl-numbers run: the transfer table and figures.

Renders a summary (with ``interp.metrics.transfer``); computes nothing else. Must not
import: studies, analysis.
"""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go

from interp.metrics.stats import fmt_ci, mean_ci
from interp.metrics.transfer import transfer
from interp.reports.html import bar_with_ci, md_table, md_to_html, write_html


def findings_table(summary: dict, key: str = "rates") -> str:
    t = transfer(summary, key)
    rows = []
    for role in ("base", "base_cross", "teacher", "student", "control", "cross_init", "shuffled"):
        if role not in summary[key]:
            continue
        tgt = summary[key][role][summary["trait"]]
        ratio = fmt_ci(t[role]["ratio"], pct=False) if role in t else "-"
        rise = fmt_ci(t[role]["rise"]) if role in t else "-"
        other = fmt_ci(t[role]["nontarget_rise"]) if role in t else "-"
        rows.append((role, fmt_ci(tgt), ratio, rise, other))
    return md_table(["model", f"{summary['trait']} rate", "x own base", "rise",
                     "mean rise of other items"], rows)


def figures(summary: dict) -> list[go.Figure]:
    """The target's rate by model (mean, CI, seeds) and every item's rate by model."""
    trait, r = summary["trait"], summary["rates"]
    roles = [k for k in ("base", "teacher", "student", "control", "shuffled", "base_cross",
                         "cross_init") if k in r]
    fig1 = bar_with_ci({k: r[k][trait] for k in roles},
                       f"P({trait}) at the answer position, by model", "probability mass")
    fig2 = go.Figure()
    for role in ("base", "student", "control"):
        if role in r:
            items = list(r[role])
            fig2.add_trace(go.Bar(name=role, x=items,
                                  y=[mean_ci(r[role][i])[0] for i in items]))
    fig2.update_layout(barmode="group", title="every item's rate: the target rises alone?",
                       height=420)
    return [fig1, fig2]


def write_report(out: Path, summary: dict) -> None:
    trait = summary["trait"]
    t = transfer(summary)
    m, lo, hi = mean_ci(t["student_minus_control"]) if "student_minus_control" in t else (0, 0, 0)
    text = (f"<p>Target <b>{html.escape(str(trait))}</b>, {html.escape(str(summary['mode']))} "
            f"mode, {len(summary['seeds'])} seeds. "
            f"Student minus control: {m * 100:.2f} points, 95% CI [{lo * 100:.2f}, "
            f"{hi * 100:.2f}].</p>" + md_to_html(findings_table(summary)) +
            "<h3>Sampled answers</h3>" + md_to_html(findings_table(summary, "sampled_rates")))
    filt = summary.get("filter", [])
    if filt:
        rej = [f["teacher"]["filter"]["rejection_rate"] for f in filt]
        text += f"<p>Filter rejected {fmt_ci(rej)} of the teacher's completions.</p>"
    write_html(out / "report.html", f"owl-numbers: {trait}",
               [("Does the trait travel through numbers?", text, figures(summary))])
