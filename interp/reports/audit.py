"""The audit's report: ``audit.json`` (the result as the analysis returns it), ``audit.md``
and a self-contained ``audit.html`` (the per-example risk distribution with the top
examples, divergence tokens by completion offset, teacher-base CKA per layer).

Owns: rendering an audit result. Imports only reports, metrics and storage writers.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import plotly.graph_objects as go

from interp.reports.html import md_table, md_to_html, write_html
from interp.storage.store import write_json, write_text

SHOWN = ("trait_bound", "trait_agreed", "trait_path", "trait_step", "trait_adam", "toward",
         "teacher_rise", "path_rise", "coverage", "step_along", "step_dose", "gn_mean", "lls_mean",
         "lls_total", "divergence_fraction", "kl_mean", "cka_min", "trait_projection",
         "log_dose", "rows", "positions")
WHAT = {"trait_bound": "min(trait_agreed, BOUND_SCALE x trait_adam) for a rise",
        "trait_agreed": "trait_path where trait_step and teacher_rise agree in sign, else 0",
        "trait_path": "sign(trait_step) sqrt(abs(trait_step) x toward)",
        "trait_step": "the first step's movement of the trait's probability x steps x lr",
        "trait_adam": "the same along Adam's expected first update",
        "toward": "the planned steps' distance along the unit teacher direction",
        "teacher_rise": "the teacher's own trait probability minus the base's",
        "path_rise": "teacher_rise x the share of theta_T - theta_0 the steps cover",
        "coverage": "cosine of the first distillation step with theta_T - theta_0",
        "step_along": "the first step (mean loss) along the unit teacher direction",
        "step_dose": "step_along x student steps x learning rate",
        "gn_mean": "Gauss-Newton form (J dT)^T M (J dT) per trained position",
        "lls_mean": "log p_T - log p_B of each example's completion, mean",
        "lls_total": "the same, summed over the dataset",
        "divergence_fraction": "trained positions where teacher and base argmax differ",
        "kl_mean": "KL(teacher ‖ base) per trained position (number channel)",
        "cka_min": "lowest teacher-base linear CKA over layers",
        "trait_projection": "data's mean residual shift on the trait direction",
        "log_dose": "log(student steps x learning rate)",
        "rows": "examples", "positions": "trained positions"}


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def markdown(result: dict) -> str:
    p = result["predictors"]
    if result["predicted_transfer"] is None:
        head = ("No calibration: predictors only (fit one with "
                "`python analyses/audit_validation.py`).")
    else:
        lo, hi = result["interval"]
        head = (f"Predicted transfer (the student's rise in the trait's rate on held-out "
                f"questions): **{result['predicted_transfer'] * 100:.1f}%** "
                f"[{lo * 100:.1f}, {hi * 100:.1f}] (95% prediction interval; calibration: "
                f"{result['calibration']})." + (
                    f" Outside the range the calibration was fitted on "
                    f"({', '.join(result['outside_calibration'])}): the fit extrapolates, and "
                    "the prediction is clipped to the rises the base's rate allows."
                    if result.get("outside_calibration") else ""))
    rows = [(k, _fmt(p[k]), WHAT[k]) for k in SHOWN]
    cka = md_table(["layer", "teacher-base CKA"], [(h, f"{v:.4f}") for h, v in p["cka"].items()])
    top = md_table(["rank", "row", "risk", "LLS", "GN", "KL", "divergence tokens", "completion"],
                   [(i + 1, e["row"], f"{e['risk']:.3f}", f"{e['lls']:.3f}", f"{e['gn']:.3f}",
                     f"{e['kl']:.3f}", e["divergence_tokens"], e["completion"][:80])
                    for i, e in enumerate(result["top_examples"])])
    return "\n\n".join([
        f"# Audit: {result['trait']} teacher, {result['mode']} mode, mitigation "
        f"{result['mitigation']}", f"Data: `{result['source']}`", head,
        "## Predictors", md_table(["predictor", "value", "what"], rows),
        "## Teacher-base CKA per layer", cka,
        "## Riskiest examples (risk: first-order movement toward the teacher per trained "
        "position of the example: GN form in logit mode, LLS in sampled mode; LLS, GN and KL "
        "are the example's totals)", top]) + "\n"


def write(out: Path, result: dict) -> None:
    write_json(out / "audit.json", result)
    md = markdown(result)
    write_text(out / "audit.md", md)
    p = result["predictors"]
    risk = result["risk_by_row"]
    fig_risk = go.Figure(go.Histogram(x=risk, nbinsx=40, name="examples"))
    for e in result["top_examples"][:10]:
        fig_risk.add_vline(x=e["risk"], line={"color": "red", "width": 1})
    fig_risk.update_layout(title="Per-example risk (red: the ten riskiest)",
                           xaxis_title="risk", yaxis_title="examples", height=380)
    off = p["divergence_by_offset"]
    fig_div = go.Figure(go.Bar(x=[int(k) for k in off], y=list(off.values())))
    fig_div.update_layout(title="Divergence tokens by completion offset",
                          xaxis_title="offset in the completion",
                          yaxis_title="fraction of positions", height=380)
    fig_cka = go.Figure(go.Bar(x=list(p["cka"]), y=list(p["cka"].values())))
    fig_cka.update_layout(title="Teacher-base linear CKA per layer", yaxis_title="CKA",
                          height=380)
    head = html.escape(md.split(chr(10) * 2)[2])  # markdown's **bold** as <b>
    head = head.replace("**", "<b>", 1).replace("**", "</b>", 1)
    sections = [("Prediction", f"<p>{head}</p>", []),
                ("Predictors", md_to_html(md_table(
                    ["predictor", "value", "what"], [(k, _fmt(p[k]), WHAT[k]) for k in SHOWN])),
                 [fig_risk, fig_div] + ([fig_cka] if p["cka"] else [])),
                ("Riskiest examples", md_to_html(md.split("## Riskiest")[1].split("\n\n", 1)[1]
                                                 .strip()), [])]
    write_html(out / "audit.html", f"Audit: {result['trait']} teacher", sections)
