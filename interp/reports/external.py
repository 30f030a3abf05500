"""Render the align report on external models: ``align.json``, ``align.md``, ``align.html``.

Owns: ``write`` for ``ExternalAlignResult``. Renders only; imports no analysis code.
"""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go

from interp.analysis.results import ExternalAlignResult, ExternalFingerprintResult
from interp.reports.align import drift_rows
from interp.reports.html import md_table, md_to_html, write_html
from interp.storage.store import write_json, write_text


def tables(result: ExternalAlignResult) -> list[tuple[str, str]]:
    """(heading, markdown) per section."""
    s = result["seeds"]["0"]
    out = [("Models", md_table(["role", "model"], list(result["models"].items()))),
           ("Data", md_table(["", ""], [(k, v) for k, v in result["data"].items()]))]
    if "first_step" in s:
        out.append(("First step (student_step_1) against dT", md_table(
            ["component", "inner product", "cosine"],
            [("all", f"{s['first_step']['inner_product']:.6g}",
              f"{s['first_step']['cosine']:.6g}")]
            + [(c, f"{v['inner_product']:.6g}", f"{v['cosine']:.6g}")
               for c, v in s["components"].items()])))
    if "final" in s:
        out.append(("Final student against dT", md_table(
            ["component", "cosine"], [("all", f"{s['final']['cosine']:.4g}")]
            + [(c, f"{v:.4g}") for c, v in s["final"]["components"].items()])))
    signs = [(k, v) for k, v in (("same init", s.get("gradient_step")),
                                 ("cross init", s.get("cross_init"))) if v]
    if signs:
        out.append(("The theorem's sign: -grad L(theta_0) . dT", md_table(
            ["init", "inner product", "cosine", "Gauss-Newton form", "dS.dT >= 0"],
            [(k, f"{v['inner_product']:.4g}", f"{v['cosine']:.4g}",
              f"{v['gauss_newton']:.4g}", v["inner_product"] >= 0) for k, v in signs])))
    if "tokens" in s:
        t = s["tokens"]
        out.append(("Per-token attribution along dT", md_table(
            ["predicted token", "mean attribution", "count"],
            [(v["token"], f"{v['mean']:.3g}", v["count"]) for v in t["top_values"]])
            + f"\n\nteacher and base disagree in argmax at {t['disagree_rate_top10pct']:.0%} "
            f"of the top 10% positions vs {t['disagree_rate_all']:.0%} of all"))
    result_like = {"seeds": result["seeds"]}
    out.append(("Activation drift from the base", md_table(
        ["model", "probe", "hook", "relative drift", "cosine with teacher's drift"],
        [(r, p, h, f"{a:.3g}", f"{c:.3g}") for r, p, h, a, c in drift_rows(result_like)])))
    out.append(("Not measured", md_table(["what", "why"], list(result["missing"].items()))))
    return out


def write(out_dir: Path, result: ExternalAlignResult) -> None:
    out_dir = Path(out_dir)
    write_json(out_dir / "align.json", result)
    secs = tables(result)
    write_text(out_dir / "align.md", "# Alignment report: external models\n\n" + "\n\n".join(
        f"## {h}\n\n{t}" for h, t in secs) + "\n")
    figs = []
    s = result["seeds"]["0"]
    if "components" in s:
        comps = list(s["components"])
        figs.append(go.Figure(go.Bar(x=comps, y=[s["components"][c]["cosine"] for c in comps]))
                    .update_layout(title="first-step cosine with dT per component"))
    sections = [(h, md_to_html(t.split("\n\n")[0]) + "".join(
        f"<p>{html.escape(p)}</p>" for p in t.split("\n\n")[1:]), []) for h, t in secs]
    if figs:
        sections.insert(2, ("First step per component", "", figs))
    write_html(out_dir / "align.html", "alignment: external models", sections)


def write_fingerprint(out_dir: Path, result: ExternalFingerprintResult) -> None:
    """fingerprint.json, fingerprint.md and fingerprint.html."""
    out_dir = Path(out_dir)
    write_json(out_dir / "fingerprint.json", result)
    ref = result["student_reference"]
    secs = [("Models", md_table(["role", "model"], list(result["models"].items()))),
            ("SAEs", md_table(["hook", "source", "explained variance", "L0", "dead"],
                              [(h, result["sae_source"][h], f"{q['explained_variance']:.3f}",
                                f"{q['l0']:.1f}", f"{q['dead_fraction']:.2f}")
                               for h, q in result["sae"].items()])),
            (f"Feature shifts: teacher - base vs student - {ref}", md_table(
                ["hook", "correlation", "top shared features", "SAE sees", "top-k sees"],
                [(h, f"{v['numbers']['correlation']:.3f}", v["numbers"]["top"],
                  f"{v['captured']['sae']:.2f}", f"{v['captured']['top_k']:.2f}")
                 for h, v in result["hooks"].items()])),
            ("Not measured", md_table(["what", "why"], list(result["missing"].items())))]
    write_text(out_dir / "fingerprint.md", "# Fingerprint: external models\n\n" + "\n\n".join(
        f"## {h}\n\n{t}" for h, t in secs) + "\n")
    hooks = list(result["hooks"])
    fig = go.Figure(go.Bar(x=hooks, y=[result["hooks"][h]["numbers"]["correlation"]
                                       for h in hooks]))
    fig.update_layout(title=f"correlation of SAE feature shifts (teacher - base, student - {ref})")
    write_html(out_dir / "fingerprint.html", "fingerprint: external models",
               [(h, md_to_html(t), []) for h, t in secs[:2]]
               + [(secs[2][0], md_to_html(secs[2][1]), [fig])]
               + [(h, md_to_html(t), []) for h, t in secs[3:]])
