"""fingerprint.json, .md and .html: the fingerprint analysis in tables, figures and words.

Renders a ``FingerprintResult``; computes nothing. Must not import: studies, analysis
(beyond its result types), the CLIs.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from interp.analysis.results import FingerprintResult
from interp.errors import UsageError
from interp.metrics.stats import fmt_ci
from interp.reports.html import bar_with_ci, md_table, md_to_html, write_html
from interp.storage.store import write_json, write_text


def _mean(per_seed: dict, fn) -> float:
    return float(np.mean([fn(s) for s in per_seed.values()]))


def sae_rows(r: dict) -> list[tuple]:
    return [(h, f"{q['explained_variance']:.3f}", f"{q['l0']:.1f}", f"{q['dead_fraction']:.1%}")
            for h, q in r["sae"].items()]


def layer_rows(r: dict) -> list[tuple]:
    ps = r["per_seed"]
    return [(h, f"{r['shift_correlation'][h]:+.3f}", f"{r['shift_correlation_trait'][h]:+.3f}",
             f"{_mean(ps, lambda s, h=h: s['hooks'][h]['linear']['cosine']):+.3f}",
             f"{_mean(ps, lambda s, h=h: s['hooks'][h]['linear']['coefficient']):+.3f}",
             f"{_mean(ps, lambda s, h=h: s['hooks'][h]['captured']['sae']):.1%}",
             f"{_mean(ps, lambda s, h=h: s['hooks'][h]['captured']['top_k']):.1%}")
            for h in r["shift_correlation"]]


def patch_rows(r: dict) -> list[tuple]:
    ps = r["per_seed"]
    first = next(iter(ps.values()))
    rows = []
    for h, res in first["hooks"].items():
        for key in res["patching"]:
            rows.append((h, key, f"{_mean(ps, lambda s, h=h, k=key: s['hooks'][h]['patching'][k]['recovered']):.1%}"))  # noqa: E501
    return rows


def causal_rows(r: dict) -> list[tuple]:
    ps = r["per_seed"]
    first = next(iter(ps.values()))
    rows = []
    for h in first["hooks"]:
        c = [s["hooks"][h]["causal"] for s in ps.values()]
        lin = [s["hooks"][h]["linear"]["gain_removed"] for s in ps.values()]
        rows.append((h, fmt_ci([x["gain_removed_top"] for x in c]),
                     fmt_ci([x["gain_removed_random"] for x in c]),
                     fmt_ci([x["gain_removed_random_active"] for x in c]),
                     fmt_ci([x["steer_rate_gain"] for x in c]), fmt_ci(lin)))
    return rows


def finding(r: dict) -> str:
    c = r["causal"]
    top, rand = np.mean(c["gain_removed_top"]), np.mean(c["gain_removed_random"])
    h = c["hook"]
    listing = "; ".join(f"feature {v['feature']} (fires on {', '.join(v['tokens'][:4])})"
                        for v in r["features"].get(h, [])[:4])
    ps = r["per_seed"]
    ans = _mean(ps, lambda s: s["hooks"][h]["patching"]["student_final->control_final:answer"]
                ["recovered"])
    ctx = _mean(ps, lambda s: s["hooks"][h]["patching"]["student_final->control_final:context"]
                ["recovered"])
    met = top >= 0.5 and rand < 0.1
    return (f"The teacher's and the student's shifts agree most at the trait prompts' answer "
            f"position in {h} (correlation {r['shift_correlation_trait'][h]:+.2f}; on the number "
            f"data the best layer is {max(r['shift_correlation'], key=r['shift_correlation'].get)}"
            f"). Its top shared-shift features: {listing}. Patching the student's {h} into the "
            f"control recovers {ans:.0%} of the student's gain at the answer position and "
            f"{ctx:.0%} from the context positions. Ablating the top {c['k']} features in the "
            f"student removes {fmt_ci(c['gain_removed_top'])} of its trait gain over control, "
            f"against {fmt_ci(c['gain_removed_random'])} for {c['k']} random (non-dead) "
            f"features and {fmt_ci(c['gain_removed_random_active'])} for {c['k']} random "
            "features active at the answer position; "
            f"steering the base with them adds {fmt_ci(c['steer_rate_gain'])} to "
            f"P({r['trait']}). The target (>= 50% removed by the fingerprint, < 10% by random "
            f"features) is {'met' if met else 'NOT met'}.")


def sections(r: dict) -> list[tuple[str, str, list[go.Figure]]]:
    """The report's sections (heading, html, figures); notebooks show the same figures."""
    t = tables(r)
    sae_t, layer_t, patch_t, causal_t, feat_t = (t[k] for k in ("sae", "layers", "patching",
                                                                "causal", "features"))
    text = finding(r)
    c = r["causal"]
    corr = go.Figure()
    for key, label in (("shift_correlation", "numbers"), ("shift_correlation_trait", "trait")):
        corr.add_trace(go.Bar(x=list(r[key]), y=list(r[key].values()), name=label))
    corr.update_layout(title="correlation of teacher-base and student-control feature shifts",
                       barmode="group", height=400)
    causal = bar_with_ci({"top-k features": c["gain_removed_top"],
                          "random k features": c["gain_removed_random"],
                          "random k active": c["gain_removed_random_active"]},
                         f"fraction of the student's trait gain removed at {c['hook']}",
                         "gain removed")
    return [
        ("Finding", f"<p>{html.escape(text)}</p>", []),
        ("SAE quality", md_to_html(sae_t), []),
        ("Shift agreement per layer", md_to_html(layer_t), [corr]),
        ("Activation patching", md_to_html(patch_t), []),
        ("Causal checks", md_to_html(causal_t), [causal]),
        ("Fingerprint features", md_to_html(feat_t), [])]


def tables(r: dict) -> dict[str, str]:
    feat_rows = [(h, v["feature"], " / ".join(v.get("contexts", v["tokens"])[:3]),
                  f"{v['max_activation']:.2f}") for h, fs in r["features"].items() for v in fs]
    return {
        "sae": md_table(["hook", "explained variance", "L0", "dead"], sae_rows(r)),
        "layers": md_table(["hook", "shift corr. (numbers)", "shift corr. (trait)",
                            "linear: cos(student shift, trait dir)", "linear: coefficient",
                            "student shift seen by the SAE", "by its top-k features"],
                           layer_rows(r)),
        "patching": md_table(["hook", "patch (src->dst:positions)", "gain recovered"],
                             patch_rows(r)),
        "causal": md_table(["hook", "gain removed: top-k", "gain removed: random k",
                            "random k active at the answer", "steering: rate gain",
                            "linear direction held at control"],
                           causal_rows(r)),
        "features": md_table(["hook", "feature", "top activating contexts ([token])", "max act."],
                             feat_rows)}


def write(run_dir: Path, r: FingerprintResult) -> None:
    """fingerprint.json/.md/.html beside the run; the align report, if there is one, is
    rendered again so that it gains the fingerprint's section."""
    write_json(run_dir / "fingerprint.json", r)
    write_report(run_dir, r)
    if (run_dir / "align.json").is_file():
        from interp.reports.align import render
        from interp.storage.rundir import read_json

        try:
            align = read_json(run_dir / "align.json")
        except UsageError:  # a damaged align.json: the next align run rewrites it
            return
        if isinstance(align, dict) and align.get("run_id") == r.get("run_id"):
            render(run_dir, align, read_json(run_dir / "summary.json"))


def write_report(run_dir: Path, r: FingerprintResult) -> None:
    t = tables(r)
    write_text(run_dir / "fingerprint.md", "\n".join([
        f"# Fingerprint: where the {r['trait']} trait lives", "", finding(r), "",
        "## SAE quality (held-out activations; sae-lens explained variance)", "", t["sae"], "",
        "## Shift agreement and the linear baseline, per layer (mean over seeds)", "",
        t["layers"], "", "## Activation patching", "", t["patching"], "",
        f"## Causal checks (k = {r['causal']['k']}; mean, 95% CI over seeds)", "", t["causal"],
        "", "## Fingerprint features (first seed)", "", t["features"], ""]))
    write_html(run_dir / "fingerprint.html", f"fingerprint: {r['trait']}", sections(r))
