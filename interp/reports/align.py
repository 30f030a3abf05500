"""align.json, align.md and align.html: the align analysis in tables, figures and words.

Owns: rendering an ``AlignResult`` (and, when the run has one, the fingerprint's finding); computes
nothing. Must not import: studies, analysis (beyond its result types), the CLIs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import plotly.graph_objects as go

from interp.analysis.results import AlignResult
from interp.errors import UsageError
from interp.metrics.stats import fmt_ci
from interp.reports.html import bar_with_ci, md_table, md_to_html, write_html
from interp.storage.rundir import read_json, run_id
from interp.storage.store import write_json, write_text

log = logging.getLogger("interp.reports.align")


def write(run_dir: Path, result: AlignResult) -> None:
    """align.json, align.md and align.html beside the run."""
    write_json(run_dir / "align.json", result)
    render(run_dir, result, read_json(run_dir / "summary.json"))


def render(run_dir: Path, result: AlignResult, summary: dict) -> None:
    """align.md and align.html; with a fingerprint.json beside them, its sections too."""
    md, sections = markdown(result), transfer_sections(summary, result) + html_sections(result)
    r = _fingerprint_of(run_dir)
    if r is not None:
        from interp.reports.fingerprint import finding
        from interp.reports.fingerprint import sections as fp_sections

        md += f"\n## Where the fingerprint lives (fingerprint.md)\n\n{finding(r)}\n"
        sections += [(f"Fingerprint: {h}", t, f) for h, t, f in fp_sections(r)]
    write_text(run_dir / "align.md", md)
    write_html(run_dir / "align.html", f"alignment: {summary['study']}", sections)


def _fingerprint_of(run_dir: Path) -> dict | None:
    """The run's fingerprint.json, if it was written for the run the directory holds now
    (same ``run_id``); a stale or damaged one from an earlier run is left out."""
    fp = run_dir / "fingerprint.json"
    if not fp.is_file():
        return None
    try:
        r = read_json(fp)
    except UsageError:
        log.warning("align: ignoring unreadable %s", fp)
        return None
    if not isinstance(r, dict) or r.get("run_id") != run_id(run_dir):
        log.warning("align: ignoring %s: it was written for another run in this directory "
                    "(rerun python -m interp.fingerprint)", fp)
        return None
    return r


def _sign_rows(result: dict) -> list[tuple]:
    s = result["seeds"]
    rows = []
    for label, key in (("same init", "gradient_step"), ("cross init", "cross_init")):
        vals = [v[key]["inner_product"] for v in s.values() if key in v]
        if vals:
            rows.append((label, f"{sum(x >= 0 for x in vals)}/{len(vals)}",
                         fmt_ci([v[key]["cosine"] for v in s.values() if key in v], pct=False,
                                digits=4),
                         f"{min(vals):.3g} .. {max(vals):.3g}"))
    return rows


def no_direction_text(result: dict) -> str | None:
    """What the report says instead of the dT sections when the teacher has no weight
    direction (a prompted teacher), else None."""
    s = list(result["seeds"].values())
    if any(v.get("weight_direction", True) for v in s):
        return None
    prefix = s[0].get("teacher_prefix", "")
    loss = sum(v["probe_loss"] for v in s) / len(s)
    return (f"The teacher is the base reading the prefix \"{prefix}\": it has no weight "
            "direction (dT = theta_T - theta_0 = 0), so the theorem's sign check, the first "
            "step's coverage, the alignment over training and the per-token attribution along "
            "dT do not apply and are not computed. What the activations can show is below: "
            "the teacher's shift (the base with the prefix vs without, at the same positions) "
            "and whether each student's activations moved the same way. The distillation loss "
            f"at theta_0 on the probe is {loss:.4g} (mean over seeds): the teacher's outputs "
            "differ from the base's, so the data carried a signal.")


def markdown(result: dict) -> str:
    s = result["seeds"]
    lines = [f"# Alignment report: {result['study']}", ""]
    none = no_direction_text(result)
    if none:
        lines += ["## No weight direction: a prompted teacher", "", none]
    else:
        lines += ["## The theorem's sign: -grad L(theta_0) . dT after one small step", "",
                  md_table(["student", "dS.dT >= 0", "cosine (mean, 95% CI)", "range"],
                           _sign_rows(result)), "",
                  "## First optimizer step (the saved student_step_1) and coverage", "",
                  md_table(["seed", "inner product", "cosine (coverage)"],
                           [(k, f"{v['first_step']['inner_product']:.4g}",
                             f"{v['first_step']['cosine']:.4f}") for k, v in s.items()
                            if "first_step" in v])]
    first = next(iter(s.values()))
    if "tokens" in first:
        t = first["tokens"]
        lines += ["", "## Per-token attribution (first seed)", "",
                  f"Top-10% attributed positions: teacher and base disagree in argmax at "
                  f"{t['disagree_rate_top10pct']:.1%} of them vs {t['disagree_rate_all']:.1%} "
                  "of all positions.", "",
                  md_table(["next token", "mean attribution", "positions"],
                           [(r["token"], f"{r['mean']:.3g}", r["count"])
                            for r in t["top_values"]])]
    if "drift" in first:
        lines += ["", "## Activation drift per layer (mean over seeds)", "",
                  "Relative drift |a - a_0| / |a_0| from the base and the cosine of the shift "
                  "with the teacher's shift, on the number probe and on the trait prompts"
                  + (f" (the teacher reads \"{first['teacher_prefix']}\")"
                     if first.get("teacher_prefix") else "") + ".", "",
                  md_table(["model", "probe", "hook", "relative drift", "cosine with teacher"],
                           [(r, p, h, f"{d:.3f}", f"{c:+.3f}")
                            for r, p, h, d, c in drift_rows(result)])]
    return "\n".join(lines) + "\n"


def drift_rows(result: dict) -> list[tuple]:
    s = list(result["seeds"].values())
    rows = []
    for role, probes in s[0].get("drift", {}).items():
        for probe, hooks in probes.items():
            for hook in hooks:
                vals = [v["drift"][role][probe][hook] for v in s]
                rows.append((role, probe, hook, sum(x["relative"] for x in vals) / len(vals),
                             sum(x["cosine"] for x in vals) / len(vals)))
    return rows


def transfer_sections(summary: dict, result: dict) -> list:
    """Transfer with controls (mean, 95% CI) and coverage against transfer, per seed."""
    if summary["study"] in ("owl-numbers", "transfer"):  # rates per role, per item
        trait = summary["trait"]
        groups = {r: v[trait] for r, v in summary["rates"].items()}
        rise = [s - b for s, b in zip(summary["rates"]["student"][trait],
                                      summary["rates"]["base"][trait])]
        ylabel = f"P({trait})"
    else:
        groups = {r: summary[f"{r}_acc"] for r in ("teacher", "student", "cross_init",
                                                   "all_logits")}
        rise, ylabel = summary["student_acc"], "test accuracy"
    figs = [bar_with_ci(groups, "transfer with controls", ylabel)]
    covered = [(k, v["coverage"], r) for (k, v), r in zip(result["seeds"].items(), rise)
               if "coverage" in v]  # none for a prompted teacher (no weight direction)
    if covered:
        cover = go.Figure(go.Scatter(x=[c[1] for c in covered], y=[c[2] for c in covered],
                                     mode="markers+text", text=[c[0] for c in covered]))
        cover.update_layout(title="coverage (first-update cosine with dT) vs transfer",
                            xaxis_title="coverage", yaxis_title="student gain", height=400)
        figs.append(cover)
    return [("Transfer", "<p>Mean over seeds, 95% CI, seeds as dots.</p>", figs)]


def html_sections(result: dict) -> list:
    s = result["seeds"]
    fig = go.Figure()
    for seed, v in s.items():
        if "cumulative" not in v:
            continue
        steps = sorted(v["cumulative"], key=int)
        for comp in v["cumulative"][steps[0]]["components"]:
            fig.add_trace(go.Scatter(x=[int(x) for x in steps], name=f"seed {seed}: {comp}",
                                     y=[v["cumulative"][x]["components"][comp] for x in steps]))
    fig.update_layout(title="cosine(theta_S(t) - theta_0, dT) per component",
                      xaxis_title="step", height=450)
    steps_fig = go.Figure()
    for seed, v in s.items():
        for kind in ("neg_grad", "update"):
            if "per_step" in v:
                y = v["per_step"][kind]["all"]
                steps_fig.add_trace(go.Scatter(x=list(range(1, len(y) + 1)), y=y,
                                               name=f"seed {seed}: {kind}", mode="lines"))
    steps_fig.update_layout(title="per-step cosine with dT (recorder): -gradient and update",
                            xaxis_title="step", height=420)
    sign = go.Figure()
    for key in ("gradient_step", "cross_init"):
        sign.add_trace(go.Box(y=[v[key]["cosine"] for v in s.values() if key in v], name=key,
                              boxpoints="all"))
    sign.update_layout(title="first-step cosine with dT: same init vs cross init", height=400)
    drift = go.Figure()
    rows = drift_rows(result)
    for role, probe in dict.fromkeys((r[0], r[1]) for r in rows):
        sel = [r for r in rows if r[:2] == (role, probe)]
        drift.add_trace(go.Scatter(x=[r[2] for r in sel], y=[r[4] for r in sel],
                                   name=f"{role} ({probe})", mode="lines+markers"))
    drift.update_layout(title="activation shift per layer: cosine with the teacher's shift",
                        height=420)
    extra = [("Activation drift per layer", md_to_html(md_table(
        ["model", "probe", "hook", "relative drift", "cosine with teacher"],
        [(r, p, h, f"{d:.3f}", f"{c:+.3f}") for r, p, h, d, c in rows])), [drift])] \
        if rows else []
    none = no_direction_text(result)
    if none:
        return [("No weight direction: a prompted teacher", f"<p>{none}</p>", [])] + extra
    return extra + [("The theorem's sign check", md_to_html(md_table(
        ["student", "dS.dT >= 0", "cosine", "range"], _sign_rows(result))), [sign]),
        ("Alignment over training", "", [fig, steps_fig])]
