"""fingerprint.json, .md and .html: the fingerprint analysis in tables, figures and words.

Owns: rendering a ``FingerprintResult``; computes nothing. Must not import: studies, analysis
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
    """Per hook and k: the causal test on the held-out prompts (top-k, random k, random k
    answer-active, steering, the linear direction) and, for comparison, top-k in-sample."""
    ps = r["per_seed"]
    first = next(iter(ps.values()))
    rows = []
    for h in first["hooks"]:
        lin = [s["hooks"][h]["linear"]["gain_removed_heldout"] for s in ps.values()]
        for k in first["hooks"][h]["causal"]["heldout"]:
            c = [s["hooks"][h]["causal"]["heldout"][k] for s in ps.values()]
            sel = [s["hooks"][h]["causal"]["select"][k] for s in ps.values()]
            rows.append((h, k, fmt_ci([x["gain_removed_top"] for x in c]),
                         fmt_ci([x["gain_removed_random"] for x in c]),
                         fmt_ci([x["gain_removed_random_active"] for x in c]),
                         fmt_ci([x["steer_rate_gain"] for x in c]), fmt_ci(lin),
                         fmt_ci([x["gain_removed_top"] for x in sel])))
    return rows


def heldout_rows(r: dict) -> list[tuple]:
    """The chosen hook's held-out test, one row per k (mean, 95% CI over seeds)."""
    return [(b["k"], fmt_ci(b["gain_removed_top"]), fmt_ci(b["gain_removed_random_active"]),
             fmt_ci(b["gain_removed_random"]), fmt_ci(b["top_minus_random_active"]),
             fmt_ci(b["steer_rate_gain"])) for b in r["causal"]["heldout"]]


def finding(r: dict) -> str:
    c = r["causal"]
    h, k = c["hook"], c["k"]
    block = next(b for b in c["heldout"] if b["k"] == k)
    crit, split = c["criterion"], c["split"]
    listing = "; ".join(f"feature {v['feature']} (fires on {', '.join(v['tokens'][:4])})"
                        for v in r["features"].get(h, [])[:k][:4])
    ps = r["per_seed"]
    ans = _mean(ps, lambda s: s["hooks"][h]["patching"]["student_final->control_final:answer"]
                ["recovered"])
    ctx = _mean(ps, lambda s: s["hooks"][h]["patching"]["student_final->control_final:context"]
                ["recovered"])
    how = ("the study's evaluation split" if split["source"] == "study" else
           f"a permutation seeded with {split['seed']}")
    return (f"Every choice below (features, hook, k, the linear direction, the steering "
            f"amounts) was made on {len(split['select'])} select phrasings of the trait "
            f"question; every effect quoted is measured on the other {len(split['heldout'])} "
            f"(held out, {how}), at each prompt's answer position. "
            f"The teacher's and the student's shifts agree most at the answer position in {h} "
            f"(correlation {r['shift_correlation_trait'][h]:+.2f}; on the number data the best "
            f"layer is {max(r['shift_correlation'], key=r['shift_correlation'].get)}). Its top "
            f"shared-shift features: {listing}. Patching the student's {h} into the control "
            f"recovers {ans:.0%} of the student's gain at the answer position and {ctx:.0%} "
            f"from the context positions. With k = {k} (chosen on the select phrasings), "
            f"ablating the top {k} features in the student removes "
            f"{fmt_ci(block['gain_removed_top'])} of its trait gain over control on held-out "
            f"phrasings, against {fmt_ci(block['gain_removed_random_active'])} for {k} random "
            f"features active at the answer position and {fmt_ci(block['gain_removed_random'])} "
            f"for {k} random (non-dead) features (in-sample, on the select phrasings, the top "
            f"{k} remove {fmt_ci(c['gain_removed_top'])}); steering the base with them adds "
            f"{fmt_ci(block['steer_rate_gain'])} to P({r['trait']}); holding the linear "
            f"trait direction at the control's level removes {fmt_ci(c['linear_heldout'])}. "
            + (f"Removing more than 100% means the edit takes P({r['trait']}) below the "
               "control's: it damages more than the trait. "
               if max(np.mean(block["gain_removed_top"]),
                      np.mean(block["gain_removed_random_active"])) > 1 else "")
            + f"95% CIs over {len(ps)} seeds ({c['ci_covers']}). The target "
            f"({crit['rule']}) is {'met' if crit['met'] else 'NOT met'}.")


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
    block = next(b for b in c["heldout"] if b["k"] == c["k"])
    causal = bar_with_ci({"top-k features": block["gain_removed_top"],
                          "random k active": block["gain_removed_random_active"],
                          "random k features": block["gain_removed_random"],
                          "linear direction": c["linear_heldout"]},
                         f"fraction of the student's trait gain removed at {c['hook']}, "
                         f"k = {c['k']}, held-out prompts", "gain removed")
    return [
        ("Finding", f"<p>{html.escape(text)}</p>", []),
        ("SAE quality", md_to_html(sae_t), []),
        ("Shift agreement per layer", md_to_html(layer_t), [corr]),
        ("Activation patching", md_to_html(patch_t), []),
        ("Causal test on held-out prompts", md_to_html(t["heldout"]), [causal]),
        ("Causal checks per hook and k (held-out prompts)", md_to_html(causal_t), []),
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
        "causal": md_table(["hook", "k", "gain removed: top-k", "random k",
                            "random k active at the answer", "steering: rate gain",
                            "linear direction held at control", "top-k in-sample (select)"],
                           causal_rows(r)),
        "heldout": md_table(["k", "gain removed: top-k", "random k answer-active",
                             "random k (non-dead)", "top-k minus random active",
                             "steering: rate gain"], heldout_rows(r)),
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


def sae_lines(r: FingerprintResult) -> list[str]:
    """Where each SAE is, in sae-lens's layout (``SAE.load_from_disk`` reads it)."""
    if not r.get("sae_dirs"):
        return []
    src = r.get("sae_source", {})
    return ["## SAEs on disk (sae-lens layout: SAE.load_from_disk(DIR))", "",
            md_table(["hook", "source", "directory"],
                     [(h, src.get(h, "trained"), d) for h, d in r["sae_dirs"].items()]), ""]


def write_report(run_dir: Path, r: FingerprintResult) -> None:
    t = tables(r)
    write_text(run_dir / "fingerprint.md", "\n".join([
        f"# Fingerprint: where the {r['trait']} trait lives", "", finding(r), "",
        "## SAE quality (held-out activations; sae-lens explained variance)", "", t["sae"], "",
        "## Shift agreement and the linear baseline, per layer (select prompts; mean over "
        "seeds)", "",
        t["layers"], "", "## Activation patching (held-out prompts)", "", t["patching"], "",
        f"## Causal test at {r['causal']['hook']} on held-out prompts (mean, 95% CI over "
        "seeds; the chosen k is " f"{r['causal']['k']})", "", t["heldout"], "",
        "Held-out phrasings: " + "; ".join(r["causal"]["split"]["heldout"]), "",
        "## Causal checks per hook and k (held-out prompts)", "", t["causal"],
        "", "## Fingerprint features (first seed)", "", t["features"], "", *sae_lines(r)]))
    write_html(run_dir / "fingerprint.html", f"fingerprint: {r['trait']}", sections(r))
