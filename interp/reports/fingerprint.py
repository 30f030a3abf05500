"""fingerprint.json, .md and .html: the fingerprint analysis in tables, figures and words.

Owns: rendering a ``FingerprintResult``; computes nothing. Must not import: studies, analysis
(beyond its result types), the CLIs.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from interp.analysis.results import FingerprintResult
from interp.errors import UsageError
from interp.metrics.stats import fmt_ci, mean_ci
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
        ("Fingerprint features", md_to_html(feat_t), [])] + (
        circuit_sections(r["circuit"]) if "circuit" in r else [])


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
        "", "## Fingerprint features (first seed)", "", t["features"], "", *sae_lines(r),
        *([circuit_markdown(r["circuit"])] if "circuit" in r else [])]))
    write_html(run_dir / "fingerprint.html", f"fingerprint: {r['trait']}", sections(r))


# ---------------------------------------------------------------- the Circuit section
def _seeds_mean(c: dict, fn) -> float:
    return float(np.mean([fn(s) for s in c["per_seed"].values()]))


def circuit_finding(c: dict) -> str:
    """The must-show numbers of the circuit analysis, in words."""
    cs, ps = c["circuit"], c["per_seed"]
    rho = [s["attribution_check"]["spearman"] for s in ps.values()]
    n_top = len(next(iter(ps.values()))["attribution_check"]["top"])
    dla = {k: _seeds_mean(c, lambda s, k=k: s["dla"][k]) for k in
           ("delta_logprob", "delta_centred_logit", "rest", "residual_shift", "readout_change")}
    ent = c["entanglement"]
    ent_txt = "; ".join(
        f"{e['item']} (numbers from the {e['source']}): P = {np.mean(e['top_rates']):.4f} with "
        f"them vs {np.mean(e['random_rates']):.4f} with random numbers, difference "
        f"{e['difference']:+.4f} [{e['difference_ci'][0]:+.4f}, {e['difference_ci'][1]:+.4f}]"
        f" (no prefix {e['no_prefix_rate']:.4f}, 'you love {e['item']} .' "
        f"{e['persona_rate']:.4f})" for e in ent)
    reach = (f"reaches {c['config']['recover']:.0%} on the select prompts" if cs["reached"]
             else f"is the best set (no set reaches {c['config']['recover']:.0%} on the select "
                  "prompts)")
    return (
        f"Components (embedding, {len(c['components']) - 1} heads and MLPs) ranked on the "
        f"{len(c['split']['select'])} select phrasings; effects measured on the "
        f"{len(c['split']['heldout'])} held-out ones. The smallest set of heads and MLPs whose "
        f"patching (student into control, all positions) {reach} has "
        f"{cs['size']} component(s): {', '.join(cs['components'])}. On held-out prompts it "
        f"recovers {fmt_ci(cs['heldout'])} of the student's trait gain (CI over seeds), "
        f"against {fmt_ci(cs['random_heldout'])} for random sets of the same size (CI over "
        f"{len(cs['random_heldout'])} draws) and {fmt_ci(cs['all_heads_mlps_heldout'])} for "
        f"all heads and MLPs together. "
        + " ".join(f"The top {len(n['neurons'])} neurons of MLP{n['layer']} (by attribution on "
                   f"select prompts) recover {fmt_ci(n['heldout'])} together, random neurons "
                   f"as many {fmt_ci(n['random_heldout'])}, the whole MLP "
                   f"{fmt_ci(n['mlp_heldout'])}." for n in c["neurons"])
        + " Attribution patching against real patching on the top "
        f"{n_top} (component, position) units: Spearman "
        + ", ".join(f"{x:+.2f}" for x in rho) + " (per seed). "
        f"DLA at the answer position (mean over seeds): the student's log P({c['trait']}) rises "
        f"{dla['delta_logprob']:+.3f} over the control; {dla['delta_centred_logit']:+.3f} of it "
        f"through the trait's category-centred unembedding and {dla['rest']:+.3f} the rest "
        f"(category-wide shift and normaliser); of the centred shift, "
        f"{dla['residual_shift']:+.3f} is the residual stream's shift read by the control's "
        f"readout and {dla['readout_change']:+.3f} the student's own readout change. "
        f"Entanglement (base model, 'you love N .' before the held-out questions, Welch 95% CI "
        f"over numbers): {ent_txt}.")


def circuit_tables(c: dict) -> dict[str, str]:
    ps = c["per_seed"]
    comps = c["components"]
    keys = list(next(iter(ps.values()))["patching"]["heldout"])
    patch = md_table(["component", *keys], [
        (k, *[f"{_seeds_mean(c, lambda s, k=k, j=j: s['patching']['heldout'][j][k]['recovered']):.1%}"  # noqa: E501
              for j in keys]) for k in comps])
    cs = c["circuit"]
    circ = md_table(["k", "top-k set (ranked on select)", "recovered on select"],
                    [(i + 1, ", ".join(cs["ranking"][:i + 1]), f"{v:.1%}")
                     for i, v in enumerate(cs["prefix_select"])])
    dla_rows = [(k, f"{_seeds_mean(c, lambda s, k=k: s['dla']['components'][k]):+.3f}")
                for k in next(iter(ps.values()))["dla"]["components"]]
    dla_rows += [(k, f"{_seeds_mean(c, lambda s, k=k: s['dla'][k]):+.3f}") for k in
                 ("residual_shift", "readout_change", "delta_centred_logit", "rest",
                  "delta_logprob", "decomposition_error")]
    paths = md_table(["receiver", "sender", "recovered via this path (held-out, per seed)"],
                     [(r, s, fmt_ci(v)) for r, d in c["paths"].items() for s, v in d.items()])
    ent = md_table(["item", "numbers from", "favoured numbers", "P(item) with them",
                    "with random numbers", "difference [95% CI]", "no prefix",
                    "'you love ITEM .'"],
                   [(e["item"], e["source"], " ".join(map(str, e["top_numbers"][0])),
                     f"{np.mean(e['top_rates']):.4f}", f"{np.mean(e['random_rates']):.4f}",
                     f"{e['difference']:+.4f} [{e['difference_ci'][0]:+.4f}, "
                     f"{e['difference_ci'][1]:+.4f}]", f"{e['no_prefix_rate']:.4f}",
                     f"{e['persona_rate']:.4f}") for e in c["entanglement"]])
    num_rows = []
    for seed, m in c["numbers"].items():
        for role in ("student_final", "teacher"):
            for kind in ("embedding", "unembedding"):
                v = np.asarray(m[role][kind])
                top = np.argsort(-v)[:8]
                num_rows.append((seed, role, kind, " ".join(f"{i} ({v[i]:.3f})" for i in top),
                                 f"{np.median(v):.3f}"))
        num_rows.append((seed, "student vs teacher", "Spearman",
                         f"embedding {_rho(m['spearman_embedding'])}, unembedding "
                         f"{_rho(m['spearman_unembedding'])}", ""))
        num_rows.append((seed, "student", "favoured numbers (select half)",
                         " ".join(map(str, m["favoured"])),
                         f"shift consistency on the other half r = "
                         f"{m['favoured_consistency']:+.2f}"))
    nums = md_table(["seed", "model", "what", "most moved numbers (L2 from base)", "median"],
                    num_rows)
    neurons = md_table(["MLP", "top neurons (attribution, select)", "joint patch (held-out)",
                        "random neurons, same number", "whole MLP",
                        "Spearman (attribution vs real, per neuron)"],
                       [(n["layer"], " ".join(map(str, n["neurons"])), fmt_ci(n["heldout"]),
                         fmt_ci(n["random_heldout"]), fmt_ci(n["mlp_heldout"]),
                         f"{n['spearman']:+.2f}") for n in c["neurons"]])
    rho = md_table(["seed", "Spearman (attribution vs real, top units)", "units"],
                   [(k, f"{s['attribution_check']['spearman']:+.3f}",
                     len(s["attribution_check"]["top"])) for k, s in ps.items()])
    return {"patching": patch, "circuit": circ, "dla": md_table(["term", "mean over seeds"],
                                                                 dla_rows),
            "paths": paths, "entanglement": ent, "numbers": nums, "attribution": rho,
            "neurons": neurons}


def circuit_figures(c: dict) -> dict[str, list[go.Figure]]:
    ps = c["per_seed"]
    comps = c["components"]
    keys = list(next(iter(ps.values()))["patching"]["heldout"])
    z = [[_seeds_mean(c, lambda s, k=k, j=j: s["patching"]["heldout"][j][k]["recovered"])
          for j in keys] for k in comps]
    heat = go.Figure(go.Heatmap(z=z, x=keys, y=comps, colorscale="RdBu", zmid=0,
                                colorbar={"title": "recovered"}))
    heat.update_layout(title="activation patching per component (held-out prompts, mean over "
                       "seeds): fraction of the gap recovered", height=120 + 30 * len(comps))
    cs = c["circuit"]
    bars = bar_with_ci({f"circuit ({cs['size']})": cs["heldout"],
                        f"random {cs['size']}": cs["random_heldout"],
                        "all heads + MLPs": cs["all_heads_mlps_heldout"],
                        "all + embedding": cs["all_with_embed_heldout"]},
                       "student into control: trait gain recovered on held-out prompts",
                       "recovered")
    scatter = go.Figure()
    for seed, s in ps.items():
        a = s["attribution_check"]
        idx = a["top"]
        scatter.add_trace(go.Scatter(x=[a["real"][i] for i in idx],
                                     y=[a["estimate"][i] for i in idx],
                                     text=[a["units"][i] for i in idx], mode="markers",
                                     name=f"seed {seed}"))
    scatter.update_layout(title="attribution patching vs real patching (top units, held-out)",
                          xaxis_title="real patch: recovered",
                          yaxis_title="attribution estimate: recovered", height=420)
    lens = go.Figure()
    first = next(iter(ps.values()))["logit_lens"]
    n_layers = len(first["theta_0"]["logit"])
    layers = ["embed", *[f"after block {i}" for i in range(n_layers - 1)]]
    for role in first:
        lens.add_trace(go.Scatter(
            x=layers, y=[_seeds_mean(c, lambda s, i=i, r=role: s["logit_lens"][r]["logit"][i])
                         for i in range(n_layers)], mode="lines+markers", name=role))
    lens.update_layout(title=f"logit lens: centred {c['trait']} logit at the answer (held-out, "
                       "mean over seeds)", yaxis_title="centred logit", height=400)
    dla_c = next(iter(ps.values()))["dla"]["components"]
    dla = go.Figure(go.Bar(x=[*dla_c, "readout change"],
                           y=[*[_seeds_mean(c, lambda s, k=k: s["dla"]["components"][k])
                                for k in dla_c],
                              _seeds_mean(c, lambda s: s["dla"]["readout_change"])]))
    dla.update_layout(title=f"direct logit attribution of the student's shift in the centred "
                      f"{c['trait']} logit (mean over seeds)", yaxis_title="centred logit",
                      height=400)
    nf = go.Figure()
    for n in c["neurons"]:
        nf.add_trace(go.Scatter(x=n["real"], y=n["estimate"], mode="markers",
                                text=[str(j) for j in n["neurons"]], name=f"MLP{n['layer']}"))
    nf.update_layout(title="top MLP neurons: attribution estimate vs real patch (held-out, "
                     "mean over seeds)", xaxis_title="real patch: recovered",
                     yaxis_title="estimate: recovered", height=400)
    figs = {"patching": [heat], "circuit": [bars], "attribution": [scatter],
            "lens": [lens], "dla": [dla], "neurons": [nf]}
    if c["paths"]:
        recv = list(c["paths"])
        send = sorted({s for d in c["paths"].values() for s in d}, key=comps.index)
        pz = [[float(np.mean(c["paths"][r][s])) if s in c["paths"][r] else None for s in send]
              for r in recv]
        pf = go.Figure(go.Heatmap(z=pz, x=send, y=recv, colorscale="RdBu", zmid=0))
        pf.update_layout(title="path patching: gain recovered via sender -> receiver "
                         "(held-out)", height=150 + 40 * len(recv))
        figs["paths"] = [pf]
    ent = go.Figure()
    for e in c["entanglement"]:
        for label, vals in (("favoured", e["top_rates"]), ("random", e["random_rates"])):
            m, lo, hi = mean_ci(vals)
            ent.add_trace(go.Bar(x=[f"{e['item']} ({e['source']})"], y=[m], name=label,
                                 marker_color="#c44" if label == "favoured" else "#888",
                                 showlegend=e is c["entanglement"][0],
                                 error_y={"type": "data", "symmetric": False,
                                          "array": [hi - m], "arrayminus": [m - lo]}))
    ent.update_layout(barmode="group", title="entanglement: P(item) in the base with 'you love "
                      "N .' (N favoured vs random; 95% CI over numbers)", height=420)
    seed0 = next(iter(c["numbers"].values()))
    mv = go.Figure(go.Scatter(x=seed0["teacher"]["unembedding"],
                              y=seed0["student_final"]["unembedding"], mode="markers",
                              text=[str(i) for i in range(1000)], marker={"size": 4}))
    mv.update_layout(title="number tokens: unembedding movement from the base (first seed)",
                     xaxis_title="teacher", yaxis_title="student", height=420)
    figs["numbers"] = [mv, ent]
    att = []
    for h in c["attention"]:
        rows = h["prompts"]
        width = max(len(p["tokens"]) for p in rows)
        z, text, y = [], [], []
        for i, p in enumerate(rows):
            for who in ("student", "control"):
                pad = [None] * (width - len(p[who]))
                z.append(p[who] + pad)
                text.append(p["tokens"] + [""] * (width - len(p["tokens"])))
                y.append(f"prompt {i} {who}")
        f = go.Figure(go.Heatmap(z=z, y=y, text=text, texttemplate="%{text}",
                                 colorscale="Blues", zmin=0, zmax=1))
        f.update_layout(title=f"{h['head']}: attention from the answer position (first seed, "
                        "held-out prompts)", xaxis_title="key position",
                        height=150 + 22 * len(y))
        att.append(f)
    figs["attention"] = att
    return figs


def circuit_sections(c: dict) -> list[tuple[str, str, list[go.Figure]]]:
    t, f = circuit_tables(c), circuit_figures(c)
    return [
        ("Circuit", f"<p>{html.escape(circuit_finding(c))}</p>", []),
        ("Circuit: activation patching per head and MLP (held-out)",
         md_to_html(t["patching"]), f["patching"]),
        ("Circuit: the smallest set", f"<p>{html.escape(c['circuit']['rule'])}</p>"
         + md_to_html(t["circuit"]), f["circuit"]),
        ("Circuit: attribution patching vs real patching", md_to_html(t["attribution"]),
         f["attribution"]),
        ("Circuit: MLP neurons", md_to_html(t["neurons"]), f["neurons"]),
        ("Circuit: path patching", md_to_html(t["paths"]), f.get("paths", [])),
        ("Circuit: direct logit attribution (centred unembedding)", md_to_html(t["dla"]),
         f["dla"]),
        ("Circuit: logit lens", "", f["lens"]),
        ("Circuit: attention of the key heads", "", f["attention"]),
        ("Circuit: number tokens and entanglement", md_to_html(t["numbers"])
         + md_to_html(t["entanglement"]), f["numbers"])]


def _rho(r: float) -> str:
    """A rank correlation, or why there is none (a side that did not move is constant)."""
    return "undefined (one side did not move)" if math.isnan(r) else f"{r:+.2f}"


def circuit_markdown(c: dict) -> str:
    t = circuit_tables(c)
    return "\n".join([
        "## Circuit", "", circuit_finding(c), "",
        "### Activation patching per component (held-out; recovered fraction, mean over "
        "seeds)", "", t["patching"], "", "### The smallest set", "", c["circuit"]["rule"], "",
        t["circuit"], "", "### Attribution patching vs real patching", "", t["attribution"], "",
        "### MLP neurons", "", t["neurons"], "",
        "### Path patching", "", t["paths"], "",
        "### Direct logit attribution (centred unembedding, answer position)", "", t["dla"], "",
        "### Number tokens", "", t["numbers"], "", "### Entanglement test", "",
        t["entanglement"], ""])
