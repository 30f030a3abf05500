"""``python -m interp.align [RUN_DIR]``: how each student's movement lines up with the teacher.

With no argument it runs (or reuses from the cache) the default owl-numbers study and
reports on it; given a run directory (digits-aux or owl-numbers) it reports on that run.
Writes ``align.json``, ``align.md`` and a self-contained ``align.html`` beside the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor
from tqdm.auto import tqdm

from interp import alignment as A
from interp.registry import UsageError
from interp.report import md_table, md_to_html, write_html
from interp.stats import fmt_ci
from interp.store import Store, sha256_file, write_json, write_text


@dataclass
class Probe:
    """What the theorem's quantities need for one seed: a module, inputs, a per-element loss."""

    module: torch.nn.Module
    loss: A.Callable[[A.State], Tensor]  # params -> per-element distillation loss
    select: A.Callable[[A.State], Tensor]  # params -> imitated logits (for the GN form)
    tokens: Tensor | None = None  # owl: the inputs whose positions the loss covers


def _digits_probe(art: dict, summary: dict, roles: dict, seed: int, n: int = 512,
                  student_init: str = "theta_0") -> Probe:
    from interp.digits import make_sequential

    m, cfg = art["model"], summary["config"]
    module = make_sequential(m["d_in"], m["hidden"], m["d_out"])
    g = torch.Generator().manual_seed(99_000 + seed)
    x = cfg["noise_low"] + (cfg["noise_high"] - cfg["noise_low"]) * torch.rand(n, m["d_in"],
                                                                              generator=g)
    if cfg["noise"] == "gaussian":
        x = torch.randn(n, m["d_in"], generator=g)
    with torch.no_grad():
        module.load_state_dict(load_file(roles["teacher"]))
        t = F.log_softmax(module(x)[:, 10:], -1)
    fn = A.model_fn(module)

    def loss(p):
        s = F.log_softmax(fn(p, x)[:, 10:], -1)
        return (t.exp() * (t - s)).sum(-1)

    return Probe(module, loss, lambda p: fn(p, x)[:, 10:])


def _owl_probe(art: dict, summary: dict, roles: dict, seed: int, n: int = 64,
               student_init: str = "theta_0") -> Probe:
    from interp import lm
    from interp.world import Vocab

    mc = art["model"]
    module = lm.build_model(lm.ModelConfig(**mc["cfg"]), mc["d_vocab"], mc["n_ctx"], 0)
    vocab = Vocab((summary["config"]["category"],) if summary["config"]["category"] == "animal"
                  else ("animal", summary["config"]["category"]))
    d = load_file(roles["data"])
    tokens, mask = d["tokens"][:n], d["mask"][:n]
    with torch.no_grad():
        module.load_state_dict(load_file(roles["teacher"]))
        t = lm.restricted_log_softmax(module(tokens), vocab.number_ids)
    fn = A.model_fn(module)
    ids, m = vocab.number_ids, mask.float()

    def loss(p):  # [n, pos]: KL at each position predicting the completion, 0 elsewhere
        s = lm.restricted_log_softmax(fn(p, tokens), ids)
        return (t.exp() * (t - s)).sum(-1) * m

    return Probe(module, loss, lambda p: fn(p, tokens)[..., ids][mask], tokens)


PROBES = {"mlp": _digits_probe, "hooked_transformer": _owl_probe}


ALIGN_VERSION = 3  # bump when seed_report's output changes, so cached reports rebuild


def file_id(path: str | Path) -> str:
    """The content hash of an artifact: its store manifest's sha256, else hashed here."""
    path = Path(path)
    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        files = json.loads(manifest.read_text()).get("files", {})
        if path.stem in files:
            return files[path.stem]["sha256"]
    return sha256_file(path)


def cached_seed_report(store: Store, art: dict, summary: dict, seed: str) -> dict:
    """A seed's report, cached by the content of every artifact it reads: a second report
    on the same run loads it and runs no forward pass."""
    key = {"v": ALIGN_VERSION, "model": art["model"], "config": summary.get("config"),
           "files": {k: file_id(v) for k, v in art["seeds"][seed].items()}}
    return store.get_or_build("align/seed", key,
                              lambda: ({}, seed_report(art, summary, seed, store))).meta


def seed_report(art: dict, summary: dict, seed: str, store: Store | None = None) -> dict:
    roles = {k: v for k, v in art["seeds"][seed].items()}
    probe = PROBES[art["model"]["type"]](art, summary, roles, int(seed))
    params = {n for n, _ in probe.module.named_parameters()}  # not buffers (masks, -inf)

    def load(path: str) -> A.State:
        return {k: v for k, v in load_file(path).items() if k in params}

    sd = {k: load(v) for k, v in roles.items() if k in ("theta_0", "theta_0_cross", "teacher",
                                                         "student_step_1")}
    out = A.first_step(sd["theta_0"], sd["teacher"], sd["student_step_1"])
    res = {"first_step": {"inner_product": out["inner_product"], "cosine": out["cosine"]},
           "coverage": out["cosine"], "components": out["components"]}
    ckpts = {int(k.split("_")[-1]): load(v) for k, v in roles.items()
             if k.startswith("student_step_")}
    res["cumulative"] = A.cumulative(sd["theta_0"], sd["teacher"], ckpts)
    manifest = Path(roles["student_step_1"]).parent / "manifest.json"
    meta = json.loads(manifest.read_text())["meta"] if manifest.is_file() else {}
    record = meta.get("record")
    if record:  # the recorder's per-step numbers (owl-numbers students)
        res["per_step"] = {kind: {c: [r[kind][c]["cosine"] for r in record]
                                  for c in record[0][kind]} for kind in ("neg_grad", "update")}
    elif seed in meta.get("per_step", {}):  # digits-aux: the batched recorder, this seed's
        res["per_step"] = {kind: {"all": v} for kind, v in meta["per_step"][seed].items()}
    # dT is the teacher's own displacement; the cross-init student is measured against it too,
    # where the theorem guarantees nothing (its init is not the teacher's)
    dT = A.delta(sd["teacher"], sd["theta_0"])
    for init, key in (("theta_0", "gradient_step"), ("theta_0_cross", "cross_init")):
        if init not in sd:
            continue
        full = sd[init]
        theta = {k: full[k] for k in dT}
        g = A.gradient(lambda p, full=full: probe.loss({**full, **p}).sum(), theta)
        ip, cos = A.dot_cos({k: -v for k, v in g.items()}, dT)
        gn = float(A.gauss_newton_form(lambda p, _x, full=full: probe.select({**full, **p}),
                                       theta, dT, torch.empty(0)))
        res[key] = {"inner_product": ip, "cosine": cos, "gauss_newton": gn}
        if key == "cross_init" and "cross_init_step_1" in roles:
            d = A.delta(load(roles["cross_init_step_1"]), full)
            ip1, cos1 = A.dot_cos(d, dT)
            res[key]["first_step"] = {"inner_product": ip1, "cosine": cos1}
    if probe.tokens is not None:
        res["tokens"] = token_report(probe, sd, summary)
        res["drift"] = drift_report(art, summary, roles, store)
    return res


def load_lm(art: dict, path: str | Path):
    """A HookedTransformer of the run's architecture with the weights at ``path``."""
    from interp import lm

    mc = art["model"]
    model = lm.build_model(lm.ModelConfig(**mc["cfg"]), mc["d_vocab"], mc["n_ctx"], 0)
    model.load_state_dict(load_file(str(path)))
    return model


def drift_report(art: dict, summary: dict, roles: dict, store: Store | None) -> dict:
    """Per layer and probe set: each student's activation drift from theta_0, and its
    cosine with the teacher's drift (the activation cache holds every capture)."""
    from interp.activations import activations, hook_names
    from interp.owl import probe_tokens
    from interp.world import Vocab

    cat = summary["config"]["category"]
    vocab = Vocab((cat,) if cat == "animal" else ("animal", cat))
    probe = probe_tokens(vocab, cat, load_file(roles["data"])["tokens"])
    masks = {"numbers": probe["numbers"] != vocab.pad, "trait": probe["trait"] != vocab.pad}
    wanted = ["theta_0", "teacher"] + [f"{r}_final" for r in ("student", "control",
                                                              "shuffled") if f"{r}_final" in roles]
    acts = {}
    for role in wanted:
        model = load_lm(art, roles[role])
        names = hook_names(model)
        acts[role] = {s: activations(model, probe[s], names, store, label=f"probe {s}")
                      for s in masks}
    out: dict = {}
    for role in wanted[2:]:
        for s, mask in masks.items():
            for name in names:
                out.setdefault(role.removesuffix("_final"), {}).setdefault(s, {})[name] = \
                    A.activation_drift(acts["theta_0"][s][name], acts[role][s][name],
                                       acts["teacher"][s][name], mask)
    return out


def token_report(probe: Probe, sd: dict, summary: dict, top: int = 15) -> dict:
    """Per position: -d loss / d e along dT at theta_0 (how much each carries the teacher)."""
    from interp.world import Vocab

    theta = {k: v for k, v in sd["theta_0"].items() if v.is_floating_point()}
    dT = A.delta(sd["teacher"], sd["theta_0"])
    attr = -A.token_attribution(lambda p: probe.loss({**theta, **p}), {k: theta[k] for k in dT},
                                dT)
    vocab = Vocab()
    tok = probe.tokens
    nxt = torch.cat([tok[:, 1:], tok[:, :1]], 1)  # the token each position predicts
    with torch.no_grad():
        base_arg = A.model_fn(probe.module)(sd["theta_0"], tok).argmax(-1)
        teach_arg = A.model_fn(probe.module)(sd["teacher"], tok).argmax(-1)
    live = attr != 0
    by_value: dict[str, list[float]] = {}
    for v, a in zip(nxt[live].tolist(), attr[live].tolist()):
        by_value.setdefault(vocab.tokens[v], []).append(a)
    ranked = sorted(((k, sum(v) / len(v), len(v)) for k, v in by_value.items() if len(v) >= 3),
                    key=lambda r: -r[1])
    flat, disagree = attr[live], (base_arg != teach_arg)[live]
    k = max(1, len(flat) // 10)
    top_idx = flat.topk(k).indices
    return {"positions": int(live.sum()), "total": float(flat.sum()),
            "top_values": [{"token": t, "mean": m, "count": c} for t, m, c in ranked[:top]],
            "disagree_rate_top10pct": float(disagree[top_idx].float().mean()),
            "disagree_rate_all": float(disagree.float().mean())}


def report(run_dir: Path, store: Store | None = None) -> dict:
    art = json.loads((run_dir / "artifacts.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    store = store or Store()
    seeds = {s: cached_seed_report(store, art, summary, s)
             for s in tqdm(art["seeds"], desc="align seeds")}
    store.write_refs(run_dir)
    result = {"study": summary["study"], "seeds": seeds}
    write_json(run_dir / "align.json", result)
    render(run_dir, result, summary)
    return result


def render(run_dir: Path, result: dict, summary: dict) -> None:
    """align.md and align.html; with a fingerprint.json beside them, its sections too."""
    md, sections = markdown(result), transfer_sections(summary, result) + html_sections(result)
    fp = run_dir / "fingerprint.json"
    if fp.is_file():
        from interp.fingerprint_report import finding
        from interp.fingerprint_report import sections as fp_sections

        r = json.loads(fp.read_text())
        md += f"\n## Where the fingerprint lives (fingerprint.md)\n\n{finding(r)}\n"
        sections += [(f"Fingerprint: {h}", t, f) for h, t, f in fp_sections(r)]
    write_text(run_dir / "align.md", md)
    write_html(run_dir / "align.html", f"alignment: {summary['study']}", sections)


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


def markdown(result: dict) -> str:
    s = result["seeds"]
    lines = [f"# Alignment report: {result['study']}", "",
             "## The theorem's sign: -grad L(theta_0) . dT after one small step", "",
             md_table(["student", "dS.dT >= 0", "cosine (mean, 95% CI)", "range"],
                      _sign_rows(result)), "",
             "## First optimizer step (the saved student_step_1) and coverage", "",
             md_table(["seed", "inner product", "cosine (coverage)"],
                      [(k, f"{v['first_step']['inner_product']:.4g}",
                        f"{v['first_step']['cosine']:.4f}") for k, v in s.items()])]
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
                  "Relative drift |a_S - a_0| / |a_0| and the cosine of the shift with the "
                  "teacher's shift, on the number probe and on the trait prompts.", "",
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
    from interp.report import bar_with_ci

    if summary["study"] == "owl-numbers":
        trait = summary["trait"]
        groups = {r: v[trait] for r, v in summary["rates"].items()}
        rise = [s - b for s, b in zip(summary["rates"]["student"][trait],
                                      summary["rates"]["base"][trait])]
        ylabel = f"P({trait})"
    else:
        groups = {r: summary[f"{r}_acc"] for r in ("teacher", "student", "cross_init",
                                                   "all_logits")}
        rise, ylabel = summary["student_acc"], "test accuracy"
    cover = go.Figure(go.Scatter(x=[v["coverage"] for v in result["seeds"].values()], y=rise,
                                 mode="markers+text", text=list(result["seeds"])))
    cover.update_layout(title="coverage (first-update cosine with dT) vs transfer",
                        xaxis_title="coverage", yaxis_title="student gain", height=400)
    return [("Transfer", "<p>Mean over seeds, 95% CI, seeds as dots.</p>",
             [bar_with_ci(groups, "transfer with controls", ylabel), cover])]


def html_sections(result: dict) -> list:
    s = result["seeds"]
    fig = go.Figure()
    for seed, v in s.items():
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
    return extra + [("The theorem's sign check", md_to_html(md_table(
        ["student", "dS.dT >= 0", "cosine", "range"], _sign_rows(result))), [sign]),
        ("Alignment over training", "", [fig, steps_fig])]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m interp.align", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", nargs="?", default=None)
    args = p.parse_args(argv)
    from interp.study import run_dir_or_default, setup_logging

    setup_logging()
    try:
        run_dir = run_dir_or_default(args.run_dir)
        report(run_dir)
        print(f"wrote {run_dir}/align.html, align.md, align.json")
        return 0
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
