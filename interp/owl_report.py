"""Transfer metrics and the HTML report for an owl-numbers run (plain functions over summaries)."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from interp.report import bar_with_ci, md_table, md_to_html, write_html
from interp.stats import fmt_ci, mean_ci

# each student role is compared with the base it started from
ROLE_BASE = {"student": "base", "control": "base", "shuffled": "base", "cross_init": "base_cross",
             "teacher": "base"}


def transfer(summary: dict, key: str = "rates") -> dict:
    """Per role: the target's rate, its ratio to the role's own base, its rise over that base,
    and the mean rise of the non-target items, all per seed; plus student - control."""
    r, trait = summary[key], summary["trait"]
    out = {}
    for role, base in ROLE_BASE.items():
        if role not in r:
            continue
        items = [i for i in r[role] if i != trait]
        tgt, b = r[role][trait], r[base][trait]
        out[role] = {
            "target": tgt,
            "ratio": [t / max(x, 1e-9) for t, x in zip(tgt, b)],
            "rise": [t - x for t, x in zip(tgt, b)],
            "nontarget_rise": [sum(r[role][i][s] - r[base][i][s] for i in items) / len(items)
                               for s in range(len(tgt))],
        }
    if "student" in r and "control" in r:
        out["student_minus_control"] = [s - c for s, c in
                                        zip(r["student"][trait], r["control"][trait])]
    return out


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
    text = (f"<p>Target <b>{trait}</b>, {summary['mode']} mode, {len(summary['seeds'])} seeds. "
            f"Student minus control: {m * 100:.2f} points, 95% CI [{lo * 100:.2f}, "
            f"{hi * 100:.2f}].</p>" + md_to_html(findings_table(summary)) +
            "<h3>Sampled answers</h3>" + md_to_html(findings_table(summary, "sampled_rates")))
    filt = summary.get("filter", [])
    if filt:
        rej = [f["teacher"]["filter"]["rejection_rate"] for f in filt]
        text += f"<p>Filter rejected {fmt_ci(rej)} of the teacher's completions.</p>"
    write_html(out / "report.html", f"owl-numbers: {trait}",
               [("Does the trait travel through numbers?", text, figures(summary))])
