"""report.html of an owl-numbers run: the transfer tables, the controls' signal, figures.

Owns: rendering an owl-numbers summary (with ``interp.metrics.transfer``); computes
nothing else. Must not import: studies, analysis.
"""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go

from interp.metrics.stats import fmt_ci, mean_ci
from interp.metrics.transfer import control_role, transfer
from interp.reports.html import bar_with_ci, md_table, md_to_html, write_html
from interp.storage.store import write_text

ROW_ORDER = ("base", "base_cross", "teacher", "teacher_other", "student", "control_other",
             "control_base", "control", "cross_init", "shuffled")
DESCRIBE = {
    "student": "same-init student on the trait teacher's {data}",
    "control_other": "same-init student on the {data} of {other}",
    "control_base": "same-init student on the base's own {data}",
    "cross_init": "student from a second base on the trait teacher's {data}",
    "shuffled": "same-init student, targets shuffled within each completion",
}
DATA = {"numbers": "numbers", "code": "code", "cot": "reasoning traces"}  # by channel
SIGNAL_MIN_RATIO = 0.2  # a control whose outputs moved less than this x the student's is inert


def describe(summary: dict, role: str) -> str:
    """What ``role`` was trained on, in the run's channel (owl-numbers: numbers) and with
    its control teacher (a misalignment run's is tuned on the same narrow data)."""
    other = "a teacher fine-tuned like the trait teacher to answer another item"
    tuned = summary.get("teacher", {}).get("control_finetuned_on")
    if summary.get("category") == "misalignment" and tuned:
        other = f"the control teacher (fine-tuned on {tuned})"
    channel = str(summary.get("channel", "numbers"))
    template = DESCRIBE.get(role)  # a role read from an edited summary is shown as it is
    return role if template is None else template.format(data=DATA.get(channel, channel),
                                                         other=other)


def item_headers(summary: dict, key: str = "rates") -> tuple[str, str]:
    """The headers of the two non-target columns: a preference run's outcomes are items; a
    misalignment run's are answer kinds (harmful, helpful), named as they are."""
    if summary.get("category") != "misalignment":
        return "mean rise of other items", "rise of its own item"
    trait = summary["trait"]
    others = sorted({i for rates in summary[key].values() for i in rates if i != trait})
    own = sorted(set(summary.get("control_items") or []))
    return (f"rise of the other answers ({', '.join(others)})",
            f"rise of {', '.join(own)}" if own else "rise of its own item")


def findings_table(summary: dict, key: str = "rates") -> str:
    t = transfer(summary, key)
    rows = []
    for role in ROW_ORDER:
        if role not in summary[key]:
            continue
        tgt = summary[key][role][summary["trait"]]
        ratio = fmt_ci(t[role]["ratio"], pct=False, digits=2) if role in t else "-"
        rise = fmt_ci(t[role]["rise"]) if role in t else "-"
        other = fmt_ci(t[role]["nontarget_rise"]) if role in t else "-"
        own = fmt_ci(t[role]["own_item_rise"]) if "own_item_rise" in t.get(role, {}) else "-"
        rows.append((role, fmt_ci(tgt), ratio, rise, other, own))
    return md_table(["model", f"{summary['trait']} rate", "x own base", "rise",
                     *item_headers(summary, key)], rows)


def signal_table(summary: dict) -> str:
    """Each trained role's loss at step 0 and its output movement from its base."""
    rows = []
    signal = summary.get("signal", {})
    for role in sorted(signal, key=lambda r: ROW_ORDER.index(r) if r in ROW_ORDER else 99):
        sig = signal[role]
        ratio = sig.get("kl_ratio")
        carried = (min(sig["loss_step0"]) > 0 and ratio is not None
                   and min(ratio) >= SIGNAL_MIN_RATIO) if role != "student" else True
        rows.append((role, fmt_ci(sig["loss_step0"], pct=False, digits=4),
                     fmt_ci(sig["kl_from_base"], pct=False, digits=4),
                     fmt_ci(ratio, pct=False, digits=3) if ratio else "-",
                     "yes" if carried else "NO: not a control"))
    return md_table(["role", "loss at step 0", "KL(model || its base) on its data",
                     "KL / student's KL", f"carried signal (loss > 0, ratio >= "
                     f"{SIGNAL_MIN_RATIO} every seed)"], rows)


def headline(summary: dict) -> str:
    """Student minus the mode's control, on the held-out questions, with what the CI covers.
    Every string read from the summary is escaped: a summary is a file anyone can edit."""
    e = html.escape
    trait, control = e(str(summary["trait"])), e(str(control_role(summary)))
    t = transfer(summary)
    n = len(summary["seeds"])
    text = f"<p>Target <b>{trait}</b>, {e(str(summary['mode']))} mode, {n} seed{'s' * (n > 1)}. "
    if "student_minus_control" in t:
        d, what = t["student_minus_control"], e(describe(summary, control_role(summary)))
        text += (f"Student minus control ({control}: {what}) on the held-out questions: "
                 f"{fmt_ci(d)}")
        if n > 1:
            m, lo, hi = mean_ci(d)
            text += f" (points: {m * 100:.2f}, 95% CI [{lo * 100:.2f}, {hi * 100:.2f}])"
        text += ".</p>"
    else:
        text += f"No control ({control}) was trained in this run: no student-minus-control.</p>"
    if "ci_covers" in summary:
        text += (f"<p>Replicates: <code>replicate={e(str(summary.get('replicate')))}</code>; "
                 f"each CI is over seeds and covers {e(str(summary['ci_covers']))}.</p>")
    q = summary.get("eval_questions", {})
    if q:
        text += ("<p>Held-out questions (never in teacher fine-tuning): "
                 + e("; ".join(q.get("rates", []))) + ". Fine-tuning phrasings: "
                 + e("; ".join(q.get("rates_select", []))) + ".</p>")
    teacher = summary.get("teacher", {})
    if teacher.get("kind") == "prompted":
        text += (f"<p>The teacher is the base with the prefix <code>{e(str(teacher['prefix']))}"
                 "</code>: it has no weight direction.</p>")
    return text


def figures(summary: dict) -> list[go.Figure]:
    """The target's rate by model (mean, CI, seeds) and every item's rate by model."""
    trait, r = summary["trait"], summary["rates"]
    roles = [k for k in ("base", "teacher", "student", "control_other", "control_base",
                         "control", "shuffled", "base_cross", "cross_init") if k in r]
    fig1 = bar_with_ci({k: r[k][trait] for k in roles},
                       f"P({trait}) at the answer position (held-out questions), by model",
                       "probability mass")
    fig2 = go.Figure()
    for role in ("base", "student", control_role(summary)):
        if role in r:
            items = list(r[role])
            fig2.add_trace(go.Bar(name=role, x=items,
                                  y=[mean_ci(r[role][i])[0] for i in items]))
    fig2.update_layout(barmode="group", title="every item's rate: the target rises alone?",
                       height=420)
    return [fig1, fig2]


def run_title(summary: dict) -> str:
    """The run's study, with its channel where the study has several: "owl-numbers",
    "transfer (code x misalignment)"."""
    study = summary.get("study", "owl-numbers")
    if "channel" not in summary:
        return study
    return f"{study} ({summary['channel']} x {summary.get('category', summary['trait'])})"


def markdown(summary: dict) -> str:
    """The tables of report.html as markdown (report.md), for quoting in notes and issues."""
    t = transfer(summary)
    lines = [f"# {run_title(summary)}: {summary['trait']}, {summary['mode']} mode, seeds "
             f"{summary['seeds']}, replicate={summary.get('replicate', 'data')}", ""]
    if "student_minus_control" in t:
        lines += [f"Student minus control ({control_role(summary)}), held-out questions: "
                  f"{fmt_ci(t['student_minus_control'])}", ""]
    if "ci_covers" in summary:
        lines += [f"Each CI is over seeds and covers {summary['ci_covers']}.", ""]
    lines += ["## Held-out questions (probability mass)", "", findings_table(summary), ""]
    if "rates_select" in summary:
        lines += ["## Fine-tuning phrasings (probability mass)", "",
                  findings_table(summary, "rates_select"), ""]
    if summary.get("signal"):
        lines += ["## Did each control carry signal?", "", signal_table(summary), ""]
    return "\n".join(lines)


def write_report(out: Path, summary: dict) -> None:
    trait = summary["trait"]
    write_text(out / "report.md", markdown(summary))
    text = (headline(summary) + "<h3>Held-out questions (probability mass)</h3>"
            + md_to_html(findings_table(summary)))
    if "rates_select" in summary:
        text += ("<h3>Fine-tuning phrasings (probability mass)</h3>"
                 + md_to_html(findings_table(summary, "rates_select")))
    text += ("<h3>Held-out questions (sampled answers)</h3>"
             + md_to_html(findings_table(summary, "sampled_rates")))
    if summary.get("signal"):
        text += ("<h3>Did each control carry signal?</h3><p>Loss at step 0 (zero: the data "
                 "could not move it) and the trained model's restricted KL from its base on "
                 "its own distillation data, relative to the student's.</p>"
                 + md_to_html(signal_table(summary)))
    filt = summary.get("filter", [])
    if filt:
        rej = [f["teacher"]["filter"]["rejection_rate"] for f in filt]
        text += f"<p>Filter rejected {fmt_ci(rej)} of the teacher's completions.</p>"
    channel = summary.get("channel", "numbers")
    write_html(out / "report.html", f"{run_title(summary)}: {trait}",
               [(f"Does the trait travel through {channel}?", text, figures(summary))])
