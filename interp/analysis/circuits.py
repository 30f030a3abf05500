"""Circuit analysis of a subliminal student: which heads, MLPs, paths and number tokens carry
the trait.

On an owl-numbers run, per seed, on the trait prompts split by ``prompt_split`` (every
choice on the *select* phrasings, every quoted effect on the *heldout* ones):

1. Components: the embedding (``blocks.0.hook_resid_pre``), each attention head's write to
   the residual (``blocks.{l}.attn.hook_result``: the head's z through its own W_O, so a
   head patched across models carries its source model's output) and each MLP
   (``blocks.{l}.hook_mlp_out``); positions: the answer position, the context before it,
   or all of them.
2. Activation patching: each component from the source model's run into the destination's
   (student -> control, teacher -> base), the trait rate P(target) and the recovered
   fraction of the gap (patched - dst) / (src - dst).
3. Attribution patching: one backward pass of the control, (a_student - a_control) . grad
   per component and position class, checked against real patching by Spearman rank
   correlation on the top components by |estimate|.
4. The smallest circuit: heads and MLPs ranked by their single-component recovery on the
   select prompts (all positions, mean over seeds); the smallest top-k set whose joint
   patch recovers ``recover`` of the gain on the select prompts is measured on the held-out
   prompts, against ``random_draws`` random sets of the same size.
5. Path patching for the best heads (ranked on select; from layer 1 on when there is one)
   and the circuit's MLPs past layer 0: each earlier component's student-minus-control
   output added to one receiver's input only (a head's ``hook_{q,k,v}_input``, an MLP's
   ``hook_mlp_in``), the trait rate read after everything downstream.
6. Direct logit attribution at the answer position through the final LayerNorm (scale
   frozen at its measured value) onto the trait's unembedding centred over the category:
   Delta log P(trait) = Delta centred trait logit + the rest (category-wide shift and
   normaliser); Delta centred logit = the residual shift read by the control's readout (the
   sum of each component's direct term, exact) + the change of the readout itself.
7. A logit lens of base, teacher, student and control across layers (each model's own
   final LayerNorm and unembedding on each layer's residual).
8. Number tokens: how far each number's embedding and unembedding moved from the base in
   the student and the teacher; the numbers the student's shift favours (student minus base
   log-probabilities over the number tokens, on the select half of the number data); the
   entanglement test: each favoured number in the base's prompt ("you love N .") against
   random numbers, for the trait (numbers favoured by the student over the base, and over
   the control) and for the trait and two held-out items with their numbers from the base
   prompted with "you love ITEM ." minus the mean over every item's persona (no training),
   with Welch CIs over numbers. The persona itself is the positive control.
9. Attention of the key heads from the answer position in student and control.
10. MLP neurons: per layer, the top neurons by attribution patching (each neuron's write,
    activation times its own W_out row, student minus control) on the select prompts; their
    joint patch on the held-out prompts against random neuron sets of the same size.

Owns: ``analyse`` -> ``CircuitResult``. Must not import: reports, the CLIs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.analysis.fingerprint import prompt_split, trait_probe
from interp.analysis.results import (
    CircuitResult,
    CircuitSeed,
    CircuitSet,
    DLASplit,
    Entanglement,
    HeadAttention,
    NeuronResult,
)
from interp.errors import UsageError
from interp.metrics import circuits as C
from interp.storage.rundir import run_id
from interp.storage.store import Store, read_tensors
from interp.studies import lm
from interp.validation import check_range, check_seed, check_types

ROLES = ("theta_0", "teacher", "student_final", "control_final")
SPLITS = ("select", "heldout")
CLASSES = ("answer", "context", "all")
DIRECTIONS = (("student_final", "control_final"), ("teacher", "theta_0"))
MAIN = "student_final->control_final"


@dataclasses.dataclass(frozen=True)
class CircuitConfig:
    recover: float = 0.8  # the smallest circuit recovers at least this on select prompts
    random_draws: int = 20  # random sets of the circuit's size (the baseline)
    top_attribution: int = 20  # units compared between attribution and real patching
    path_heads: int = 3  # receiver heads of path patching
    attention_heads: int = 3  # heads whose attention is shown
    top_neurons: int = 10  # MLP neurons per layer chosen by attribution on select prompts
    number_rows: int = 256  # number-data rows: the first half selects, the second checks
    top_numbers: int = 10  # favoured numbers tested per target
    random_numbers: int = 30  # random numbers they are compared with
    heldout_targets: int = 2  # items of the category beside the trait (entanglement test)
    seed: int = 0
    split_seed: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        check_range(self, ("recover",), 0, 1, low_open=True)
        check_range(self, ("random_draws", "top_attribution", "number_rows", "top_numbers",
                           "random_numbers", "top_neurons"), 1)
        check_range(self, ("number_rows",), 2, 100_000)
        check_range(self, ("path_heads", "attention_heads", "heldout_targets"), 0)
        check_range(self, ("top_numbers", "random_numbers"), 1, 500)
        check_seed("seed", self.seed)
        check_seed("split_seed", self.split_seed)


# ------------------------------------------------------------------ components
def components(n_layers: int, n_heads: int) -> list[str]:
    """Every component in residual order: ``embed``, then per layer its heads then its MLP."""
    out = ["embed"]
    for layer in range(n_layers):
        out += [f"L{layer}H{h}" for h in range(n_heads)] + [f"MLP{layer}"]
    return out


def hook_of(comp: str) -> tuple[str, int | None]:
    """The hook a component writes at, and its head index (None for a whole-vector hook)."""
    if comp == "embed":
        return "blocks.0.hook_resid_pre", None
    if comp.startswith("MLP"):
        return f"blocks.{int(comp[3:])}.hook_mlp_out", None
    layer, head = comp[1:].split("H")
    return f"blocks.{int(layer)}.attn.hook_result", int(head)


def layer_of(comp: str) -> int:
    if comp == "embed":
        return -1
    return int(comp[3:]) if comp.startswith("MLP") else int(comp[1:].split("H")[0])


def prepare(model):
    """Per-head outputs and per-head inputs as hook points (TransformerLens options)."""
    model.set_use_attn_result(True)
    model.set_use_split_qkv_input(True)
    model.set_use_hook_mlp_in(True)
    return model


def run_cache(model, tokens) -> dict[str, Tensor]:
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return {k: v for k, v in cache.items()}


def masks_for(probe: dict) -> dict[str, Bool[Tensor, "n pos"]]:
    pos = torch.arange(probe["trait"].shape[1])[None]
    last = probe["trait_last"][:, None]
    return {"answer": pos == last, "context": pos < last, "all": pos <= last}


def replace(x: Tensor, src: Tensor, idx: int | None, mask: Tensor, alpha: float) -> Tensor:
    """``x`` moved ``alpha`` of the way to ``src`` at the masked positions (head ``idx``)."""
    if idx is None:
        return torch.where(mask[..., None], x + alpha * (src - x), x)
    x = x.clone()
    x[:, :, idx] = torch.where(mask[..., None], x[:, :, idx] + alpha * (src[:, :, idx]
                                                                        - x[:, :, idx]),
                               x[:, :, idx])
    return x


def patch_hooks(units: list[tuple[str, str]], src: dict, masks: dict, alpha: float = 1.0):
    by_hook: dict[str, list] = {}
    for comp, cls in units:
        hook, idx = hook_of(comp)
        by_hook.setdefault(hook, []).append((idx, masks[cls]))

    def make(hook, items):
        def fn(x, hook=None, name=hook, items=items):
            for idx, m in items:
                x = replace(x, src[name], idx, m, alpha)
            return x
        return fn
    return [(h, make(h, items)) for h, items in by_hook.items()]


class Target:
    """What every patch measures: P(target) and the centred trait logit at the answer."""

    def __init__(self, probe: dict, target: int, items: Tensor):
        self.probe, self.target, self.items = probe, target, items

    def measure(self, model, hooks=()) -> dict[str, float]:
        with torch.no_grad():
            logits = model.run_with_hooks(self.probe["trait"], fwd_hooks=list(hooks))
        last = self.probe["trait_last"]
        ans = logits[torch.arange(len(last)), last]
        return {"rate": float(C.answer_prob(logits, last, self.target)),
                "logit": float(C.centred_logit(ans, self.target, self.items).mean())}


def patch_effect(dst_model, t: Target, units, src: dict, masks: dict, base: dict,
                 full: dict, alpha: float = 1.0) -> dict[str, float]:
    """Patch ``units`` (component, position class) from ``src`` into ``dst_model``; ``base``
    and ``full`` are the destination's and the source's unpatched measurements."""
    m = t.measure(dst_model, patch_hooks(units, src, masks, alpha))
    return {**m, "recovered": C.recovered(m["rate"], base["rate"], full["rate"])}


def attribution(dst_model, t: Target, src: dict, masks: dict, comps: list[str],
                classes=("answer", "context", "all")) -> dict[str, dict[str, float]]:
    """Attribution patching: cls -> component -> estimated change of P(target) when the
    component's activation at those positions is replaced by the source's."""
    saved: dict[str, Tensor] = {}

    def keep(x, hook):
        x.retain_grad()
        saved[hook.name] = x
        return x
    hooks = sorted({hook_of(c)[0] for c in comps})
    with torch.enable_grad():
        logits = dst_model.run_with_hooks(t.probe["trait"], fwd_hooks=[(h, keep) for h in hooks])
        C.answer_prob(logits, t.probe["trait_last"], t.target).backward()
    dst_model.zero_grad(set_to_none=True)
    out: dict[str, dict[str, float]] = {}
    for cls in classes:
        out[cls] = {}
        for c in comps:
            hook, idx = hook_of(c)
            a, g, s = saved[hook].detach(), saved[hook].grad, src[hook]
            if idx is not None:
                a, g, s = a[:, :, idx], g[:, :, idx], s[:, :, idx]
            out[cls][c] = C.attribution_estimate(g, a, s, masks[cls])
    return out


def path_effect(dst_model, t: Target, receiver: str, sender: str, src: dict, dst: dict,
                base: dict, full: dict) -> float:
    """Recovered fraction when ``sender``'s source-minus-destination output reaches only
    ``receiver``'s input (a head's query, key and value inputs; an MLP's input), at every
    position."""
    s_hook, s_idx = hook_of(sender)
    delta = src[s_hook] - dst[s_hook]
    if s_idx is not None:
        delta = delta[:, :, s_idx]
    layer, head = layer_of(receiver), hook_of(receiver)[1]

    def add(x, hook):
        x = x.clone()
        x[:, :, head] = x[:, :, head] + delta
        return x
    if head is None:  # an MLP
        hooks = [(f"blocks.{layer}.hook_mlp_in", lambda x, hook: x + delta)]
    else:
        hooks = [(f"blocks.{layer}.hook_{k}_input", add) for k in "qkv"]
    m = t.measure(dst_model, hooks)
    return C.recovered(m["rate"], base["rate"], full["rate"])


# ------------------------------------------------------------------ DLA and the lens
def component_outputs(model, cache: dict, last: Tensor) -> dict[str, Float[Tensor, "n d"]]:
    """Each component's write to the residual at the answer positions (``biases``: the
    attention output biases); they sum to the final residual exactly."""
    rows = torch.arange(len(last))
    L, H = model.cfg.n_layers, model.cfg.n_heads
    out = {"embed": cache["blocks.0.hook_resid_pre"][rows, last]}
    for layer in range(L):
        res = cache[f"blocks.{layer}.attn.hook_result"][rows, last]
        for h in range(H):
            out[f"L{layer}H{h}"] = res[:, h]
        out[f"MLP{layer}"] = cache[f"blocks.{layer}.hook_mlp_out"][rows, last]
    out["biases"] = sum(model.blocks[i].attn.b_O for i in range(L)).detach().expand_as(out["embed"])
    return out


def readout(model, target: int, items: Tensor) -> tuple[Tensor, Tensor, float]:
    """(ln_final.w, centred unembedding direction, the constant: ln_b . u + centred b_U)."""
    u = C.centred_direction(model.W_U.detach(), target, items)
    b_U = model.b_U.detach()
    const = float(model.ln_final.b.detach() @ u + b_U[target] - b_U[items].mean())
    return model.ln_final.w.detach(), u, const


def dla_split(models: dict, caches: dict, last: Tensor, target: int, items: Tensor,
              comps: list[str]) -> DLASplit:
    """The student's shift over the control at the answer position (mean over prompts),
    split as in step 6 of the module docstring."""
    S, Cm = models["student_final"], models["control_final"]
    rows = torch.arange(len(last))
    o = {r: component_outputs(models[r], caches[r], last) for r in ("student_final",
                                                                    "control_final")}
    names = [*comps, "biases"]
    scale = {r: caches[r]["ln_final.hook_scale"][rows, last] for r in o}
    w_s, u_s, k_s = readout(S, target, items)
    w_c, u_c, k_c = readout(Cm, target, items)

    def direct(r, w, u):
        return C.direct_logit(torch.stack([o[r][c] for c in names]), scale[r], w, u).mean(1)
    d_s_on_c, d_c_on_c = direct("student_final", w_c, u_c), direct("control_final", w_c, u_c)
    d_s_on_s = direct("student_final", w_s, u_s)
    per = (d_s_on_c - d_c_on_c).tolist()
    readout_change = float((d_s_on_s - d_s_on_c).sum()) + k_s - k_c

    with torch.no_grad():
        final = f"blocks.{S.cfg.n_layers - 1}.hook_resid_post"
        ls = S.unembed(S.ln_final(caches["student_final"][final]))
        lc = Cm.unembed(Cm.ln_final(caches["control_final"][final]))
    a_s, a_c = ls[rows, last], lc[rows, last]
    cl_s = C.centred_logit(a_s, target, items)
    cl_c = C.centred_logit(a_c, target, items)
    lp_s = torch.log_softmax(a_s, -1)[:, target]
    lp_c = torch.log_softmax(a_c, -1)[:, target]
    d_cl = float((cl_s - cl_c).mean())
    d_lp = float((lp_s - lp_c).mean())
    return {"delta_logprob": d_lp, "delta_centred_logit": d_cl,
            "rest": d_lp - d_cl,
            "residual_shift": float(sum(per)), "readout_change": readout_change,
            "components": dict(zip(names, per)),
            "decomposition_error": float(sum(per)) + readout_change - d_cl}


def logit_lens(model, cache: dict, last: Tensor, target: int, items: Tensor) \
        -> dict[str, list[float]]:
    """P(target) and the centred trait logit at the answer, reading each layer's residual
    (``embed``, then after each block) through the model's own final LN and unembedding."""
    rows = torch.arange(len(last))
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post"
                                          for i in range(model.cfg.n_layers)]
    rate, logit = [], []
    with torch.no_grad():
        for n in names:
            lg = model.unembed(model.ln_final(cache[n][rows, last][:, None]))[:, 0]
            rate.append(float(torch.softmax(lg, -1)[:, target].mean()))
            logit.append(float(C.centred_logit(lg, target, items).mean()))
    return {"rate": rate, "logit": logit}


# ------------------------------------------------------------------ number tokens
def number_logp(model, tokens: Tensor, mask: Tensor, numeric: Tensor,
                prefix: list[int] | None = None) -> Float[Tensor, "m k"]:
    """log-softmax over the 1000 number tokens at the masked positions, row by row (a
    prefix, if given, is inserted after <bos> and its positions dropped, like a prompted
    teacher's)."""
    width = int(mask.any(0).nonzero().max()) + 1  # causal: later columns change nothing
    tokens, mask = tokens[:, :width], mask[:, :width]
    with torch.no_grad():
        if prefix:
            pre = torch.tensor(prefix)
            full = torch.cat([tokens[:, :1], pre.expand(len(tokens), -1), tokens[:, 1:]], 1)
            logits = model(full)[:, len(prefix):]
        else:
            logits = model(tokens)
    return torch.log_softmax(logits[mask][:, numeric], -1)


def favoured_numbers(lp: Tensor, lp_ref: Tensor, mask: Tensor) -> tuple[Tensor, float]:
    """(the shift of log P(number) of ``lp`` over ``lp_ref`` (both at ``mask``'s positions)
    on the first (select) half of the rows, its correlation with the same shift on the
    second half)."""
    row = mask.nonzero()[:, 0]
    sel = (row < len(mask) // 2)[None]
    shift = C.masked_mean_shift(lp[None], lp_ref[None], sel)
    held = C.masked_mean_shift(lp[None], lp_ref[None], ~sel)
    return shift, float(np.corrcoef(shift.numpy(), held.numpy())[0, 1])


def prefixed_rates(model, vocab, questions: list[str], target: int, prefixes: list[str]) \
        -> list[float]:
    """P(target) at the answer (mean over ``questions``) with each persona prefix."""
    out = []
    for p in prefixes:
        probe = trait_probe(vocab, questions, p)
        with torch.no_grad():
            logits = model(probe["trait"])
        out.append(float(C.answer_prob(logits, probe["trait_last"], target)))
    return out


def entanglement(base, vocab, questions: list[str], item: str, source: str,
                 shifts: list[Tensor], ccfg: CircuitConfig) -> Entanglement:
    """The favoured numbers of each shift (one per seed) in the base's prompt vs random."""
    target = vocab.index[item]
    tops, rands = [], []
    rng = np.random.default_rng(ccfg.seed)
    for shift in shifts:
        top = shift.topk(ccfg.top_numbers).indices.tolist()
        pool = np.setdiff1d(np.arange(1000), top)
        tops.append(top)
        rands.append(rng.choice(pool, ccfg.random_numbers, replace=False).tolist())
    top_n = [n for t in tops for n in t]
    rand_n = [n for r in rands for n in r]
    top_r = prefixed_rates(base, vocab, questions, target, [f"you love {n} ." for n in top_n])
    rand_r = prefixed_rates(base, vocab, questions, target, [f"you love {n} ." for n in rand_n])
    none, persona = prefixed_rates(base, vocab, questions, target, ["", f"you love {item} ."])
    d, lo, hi = C.diff_ci(top_r, rand_r)
    return {"item": item, "source": source, "top_numbers": tops, "top_rates": top_r,
            "random_numbers": rands, "random_rates": rand_r, "no_prefix_rate": none,
            "persona_rate": persona, "difference": d, "difference_ci": [lo, hi],
            "ratio": float(np.mean(top_r) / np.mean(rand_r)) if np.mean(rand_r) > 0 else 0.0}


# ------------------------------------------------------------------ one seed
def seed_analysis(art: dict, roles: dict, vocab, split, target: int, items: Tensor,
                  ccfg: CircuitConfig, store: Store | None = None) -> tuple[CircuitSeed, dict]:
    models = {r: prepare(lm.from_artifacts(art["model"], roles[r], store)) for r in ROLES}
    L, H = models["theta_0"].cfg.n_layers, models["theta_0"].cfg.n_heads
    comps = components(L, H)
    probes = {s: trait_probe(vocab, split[s]) for s in SPLITS}
    targets = {s: Target(probes[s], target, items) for s in SPLITS}
    masks = {s: masks_for(probes[s]) for s in SPLITS}
    caches = {s: {r: run_cache(m, probes[s]["trait"]) for r, m in models.items()} for s in SPLITS}
    meas = {s: {r: targets[s].measure(m) for r, m in models.items()} for s in SPLITS}
    patching: dict = {s: {} for s in SPLITS}
    for s in SPLITS:
        for src, dst in DIRECTIONS:
            for cls in CLASSES:
                patching[s][f"{src}->{dst}:{cls}"] = {
                    c: patch_effect(models[dst], targets[s], [(c, cls)], caches[s][src],
                                    masks[s], meas[s][dst], meas[s][src]) for c in comps}
    attr = {}
    for s in SPLITS:
        gap = meas[s]["student_final"]["rate"] - meas[s]["control_final"]["rate"]
        est = attribution(models["control_final"], targets[s], caches[s]["student_final"],
                          masks[s], comps)
        attr[s] = {cls: {c: v / gap if gap else 0.0 for c, v in d.items()}
                   for cls, d in est.items()}
    # attribution vs real on the held-out prompts: units (component, answer/context)
    units = [(c, cls) for cls in ("answer", "context") for c in comps]
    est = [attr["heldout"][cls][c] for c, cls in units]
    real = [patching["heldout"][f"{MAIN}:{cls}"][c]["recovered"] for c, cls in units]
    order = np.argsort(-np.abs(est))[:ccfg.top_attribution]
    rho = C.spearman([est[i] for i in order], [real[i] for i in order])
    dla = dla_split(models, caches["heldout"], probes["heldout"]["trait_last"], target, items,
                    comps)
    lens = {r: logit_lens(models[r], caches["heldout"][r], probes["heldout"]["trait_last"],
                          target, items) for r in ROLES}
    out: CircuitSeed = {
        "rates": {s: {r: meas[s][r]["rate"] for r in ROLES} for s in SPLITS},
        "centred_logits": {s: {r: meas[s][r]["logit"] for r in ROLES} for s in SPLITS},
        "patching": patching, "attribution": attr,
        "attribution_check": {"units": [f"{c}:{cls}" for c, cls in units],
                              "estimate": est, "real": real,
                              "top": [int(i) for i in order], "spearman": rho},
        "dla": dla, "logit_lens": lens}
    ctx = {"models": models, "probes": probes, "targets": targets, "masks": masks,
           "caches": caches, "meas": meas, "comps": comps}
    return out, ctx


def set_recovery(ctx: dict, split: str, comps: list[str]) -> float:
    t, m = ctx["targets"][split], ctx["meas"][split]
    return patch_effect(ctx["models"]["control_final"], t, [(c, "all") for c in comps],
                        ctx["caches"][split]["student_final"], ctx["masks"][split],
                        m["control_final"], m["student_final"])["recovered"]


def smallest_circuit(per_seed: dict, ctxs: dict, ccfg: CircuitConfig) -> CircuitSet:
    """Step 4 of the module docstring."""
    comps = [c for c in next(iter(ctxs.values()))["comps"] if c != "embed"]
    single = {c: float(np.mean([p["patching"]["select"][f"{MAIN}:all"][c]["recovered"]
                                for p in per_seed.values()])) for c in comps}
    ranking = sorted(comps, key=lambda c: -single[c])
    prefix_sel = [float(np.mean([set_recovery(ctx, "select", ranking[:k]) for ctx in
                                 ctxs.values()])) for k in range(1, len(ranking) + 1)]
    i = C.smallest_reaching(prefix_sel, ccfg.recover)
    k = (i + 1) if i is not None else int(np.argmax(prefix_sel)) + 1
    chosen = ranking[:k]
    held = [set_recovery(ctx, "heldout", chosen) for ctx in ctxs.values()]
    rng = np.random.default_rng(ccfg.seed)
    draws, rand_sets = [], []
    for _ in range(ccfg.random_draws):
        pick = sorted(rng.choice(len(comps), k, replace=False).tolist())
        rs = [comps[j] for j in pick]
        rand_sets.append(rs)
        draws.append(float(np.mean([set_recovery(ctx, "heldout", rs) for ctx in ctxs.values()])))
    full = [set_recovery(ctx, "heldout", comps) for ctx in ctxs.values()]
    full_embed = [set_recovery(ctx, "heldout", ["embed", *comps]) for ctx in ctxs.values()]
    return {"ranking": ranking, "single_select": single, "prefix_select": prefix_sel,
            "size": k, "reached": i is not None, "components": chosen,
            "heldout": held, "random_sets": rand_sets, "random_heldout": draws,
            "all_heads_mlps_heldout": full, "all_with_embed_heldout": full_embed,
            "rule": f"heads and MLPs ranked by their own patch recovery on the select prompts "
                    f"(student into control, all positions, mean over seeds); the smallest "
                    f"top-k set recovering at least {ccfg.recover:.0%} on the select prompts "
                    f"(else the best k); measured on the held-out prompts; random sets of "
                    f"the same size from the heads and MLPs ({ccfg.random_draws} draws, each "
                    f"the mean over seeds)"}


# ------------------------------------------------------------------ MLP neurons
def neuron_writes(model, cache: dict, layer: int) -> tuple[Tensor, Tensor]:
    """(activations [n, pos, d_mlp], W_out [d_mlp, d]): neuron j writes act_j * W_out[j]."""
    return cache[f"blocks.{layer}.mlp.hook_post"], model.blocks[layer].mlp.W_out.detach()


def neuron_hooks(ctx: dict, split: str, layer: int, idx: list[int], cls: str = "all"):
    """Add the student's write minus the control's for neurons ``idx`` to the control's MLP
    output (a neuron's write includes its own W_out row, as a head's includes its W_O)."""
    a_s, w_s = neuron_writes(ctx["models"]["student_final"],
                             ctx["caches"][split]["student_final"], layer)
    a_c, w_c = neuron_writes(ctx["models"]["control_final"],
                             ctx["caches"][split]["control_final"], layer)
    j = torch.tensor(idx, dtype=torch.long)
    delta = a_s[..., j] @ w_s[j] - a_c[..., j] @ w_c[j]
    mask = ctx["masks"][split][cls][..., None]
    return [(f"blocks.{layer}.hook_mlp_out", lambda x, hook: x + delta * mask)]


def neuron_attribution(ctx: dict, split: str, layer: int, cls: str = "all") -> Tensor:
    """Attribution patching per neuron: grad(mlp_out) . (student's write - control's)."""
    model, t = ctx["models"]["control_final"], ctx["targets"][split]
    saved: dict[str, Tensor] = {}

    def keep(x, hook):
        x.retain_grad()
        saved["x"] = x
        return x
    with torch.enable_grad():
        logits = model.run_with_hooks(t.probe["trait"],
                                      fwd_hooks=[(f"blocks.{layer}.hook_mlp_out", keep)])
        C.answer_prob(logits, t.probe["trait_last"], t.target).backward()
    model.zero_grad(set_to_none=True)
    g = saved["x"].grad * ctx["masks"][split][cls][..., None]
    a_s, w_s = neuron_writes(ctx["models"]["student_final"],
                             ctx["caches"][split]["student_final"], layer)
    a_c, w_c = neuron_writes(model, ctx["caches"][split]["control_final"], layer)
    return ((a_s * (g @ w_s.T)) - (a_c * (g @ w_c.T))).sum((0, 1))


def neuron_circuit(ctxs: dict, layer: int, ccfg: CircuitConfig) -> NeuronResult:
    """The MLP's top neurons by attribution on the select prompts (mean over seeds); their
    joint patch (student into control, all positions) on the held-out prompts vs random
    neuron sets of the same size; attribution vs real patching per top neuron."""
    first = next(iter(ctxs.values()))
    d_mlp = first["models"]["theta_0"].cfg.d_mlp
    k = min(ccfg.top_neurons, d_mlp)
    est = torch.stack([neuron_attribution(ctx, "select", layer) for ctx in ctxs.values()])
    top = est.mean(0).topk(k).indices.tolist()

    def rec(ctx, idx):
        m = ctx["meas"]["heldout"]
        out = ctx["targets"]["heldout"].measure(ctx["models"]["control_final"],
                                                 neuron_hooks(ctx, "heldout", layer, idx))
        return C.recovered(out["rate"], m["control_final"]["rate"], m["student_final"]["rate"])
    held = [rec(ctx, top) for ctx in ctxs.values()]
    rng = np.random.default_rng(ccfg.seed + layer)
    rand = [float(np.mean([rec(ctx, sorted(rng.choice(d_mlp, k, replace=False).tolist()))
                           for ctx in ctxs.values()])) for _ in range(ccfg.random_draws)]
    # attribution vs real per top neuron (held-out), as recovered fractions
    est_h = torch.stack([neuron_attribution(ctx, "heldout", layer) for ctx in ctxs.values()])
    gaps = [ctx["meas"]["heldout"]["student_final"]["rate"]
            - ctx["meas"]["heldout"]["control_final"]["rate"] for ctx in ctxs.values()]
    est_top = [float(np.mean([float(est_h[i, j]) / g if g else 0.0 for i, g in enumerate(gaps)]))
               for j in top]
    real_top = [float(np.mean([rec(ctx, [j]) for ctx in ctxs.values()])) for j in top]
    return {"layer": layer, "neurons": top, "heldout": held, "random_heldout": rand,
            "estimate": est_top, "real": real_top,
            "spearman": C.spearman(est_top, real_top),
            "mlp_heldout": [set_recovery(ctx, "heldout", [f"MLP{layer}"])
                            for ctx in ctxs.values()]}


def analyse(run_dir: Path, ccfg: CircuitConfig = CircuitConfig(),
            store: Store | None = None) -> CircuitResult:
    """The whole circuit analysis on one owl-numbers run. It builds no store entry: every
    model is read, verified, from the files the run's ``artifacts.json`` names, in ``store``
    (default: ``Store()``)."""
    from interp.analysis.fingerprint import _owl_config, check_owl_run
    from interp.studies.runner import load_run
    from interp.studies.world import CATEGORIES, vocab_for

    art, summary = load_run(run_dir)
    check_owl_run(run_dir, art, summary, "circuit")
    cfg = _owl_config(summary)
    if cfg.teacher_kind == "prompted":
        raise UsageError(f"{run_dir} has a prompted teacher; the circuit analysis patches the "
                         "teacher's weights into the base: use --set teacher_kind=finetuned")
    vocab = vocab_for(cfg.category)
    cat = CATEGORIES[cfg.category]
    target = vocab.index[summary["trait"]]
    items = torch.tensor(vocab.ids(cat.items))
    split = prompt_split(summary, cfg.category, ccfg.split_seed)
    per_seed, ctxs = {}, {}
    for seed in tqdm(list(art["seeds"]), desc="circuit seeds"):
        per_seed[seed], ctxs[seed] = seed_analysis(art, art["seeds"][seed], vocab, split,
                                                   target, items, ccfg, store)
    circuit = smallest_circuit(per_seed, ctxs, ccfg)
    first = next(iter(ctxs.values()))
    # path patching for the best heads (ranked on the select prompts)
    # receivers: the best heads that read from earlier components beyond the embedding
    # (layer >= 1) when the model has them
    all_heads = [c for c in circuit["ranking"] if "H" in c]
    heads = ([c for c in all_heads if layer_of(c) >= 1] or all_heads)[:ccfg.path_heads]
    # and the MLPs of the circuit past the first layer: what they read the trait from
    mlps = [c for c in circuit["components"] if c.startswith("MLP") and layer_of(c) >= 1]
    paths = {}
    for rcv in heads + mlps:
        senders = [c for c in first["comps"] if layer_of(c) < layer_of(rcv)
                   or (c.startswith("L") and rcv.startswith("MLP")
                       and layer_of(c) == layer_of(rcv))]
        paths[rcv] = {snd: [path_effect(ctx["models"]["control_final"], ctx["targets"]["heldout"],
                                        rcv, snd, ctx["caches"]["heldout"]["student_final"],
                                        ctx["caches"]["heldout"]["control_final"],
                                        ctx["meas"]["heldout"]["control_final"],
                                        ctx["meas"]["heldout"]["student_final"])
                            for ctx in ctxs.values()] for snd in senders}
    attention = [head_attention(first, vocab, h) for h in all_heads[:ccfg.attention_heads]]
    neurons = [neuron_circuit(ctxs, layer, ccfg) for layer in
               range(first["models"]["theta_0"].cfg.n_layers)]
    numbers = number_tokens(art, vocab, cfg, ccfg, split, summary, store)
    return {"trait": summary["trait"], "components": first["comps"], "split": split,
            "per_seed": per_seed, "circuit": circuit, "paths": paths,
            "attention": attention, "neurons": neurons, **numbers,
            "config": dataclasses.asdict(ccfg),
            "ci_covers": summary.get("ci_covers", "seeds"), "run_id": run_id(run_dir)}


def head_attention(ctx: dict, vocab, comp: str) -> HeadAttention:
    """The head's attention from each held-out prompt's answer position, student and
    control (first seed), and the key position where they differ most."""
    layer, head = layer_of(comp), hook_of(comp)[1]
    probe = ctx["probes"]["heldout"]
    rows = []
    for i, last in enumerate(probe["trait_last"].tolist()):
        toks = [vocab.tokens[t] for t in probe["trait"][i, :last + 1].tolist()]
        pat = {r: ctx["caches"]["heldout"][r][f"blocks.{layer}.attn.hook_pattern"]
               [i, head, last, :last + 1].tolist() for r in ("student_final", "control_final")}
        diff = np.abs(np.subtract(pat["student_final"], pat["control_final"]))
        rows.append({"tokens": toks, "student": pat["student_final"],
                     "control": pat["control_final"], "most_changed": int(diff.argmax())})
    return {"head": comp, "prompts": rows}


def number_tokens(art: dict, vocab, cfg, ccfg: CircuitConfig, split, summary: dict,
                  store: Store | None = None) -> dict:
    """Step 8 of the module docstring."""
    from interp.studies.world import CATEGORIES

    numeric = torch.tensor([vocab.index[str(i)] for i in range(1000)])
    movement: dict = {}
    shifts, shifts_ctl = [], []
    for seed, roles in art["seeds"].items():
        base = lm.from_artifacts(art["model"], roles["theta_0"], store)
        mv = {}
        for r in ("student_final", "teacher"):
            m = lm.from_artifacts(art["model"], roles[r], store)
            emb = C.row_movement(m.W_E.detach()[numeric], base.W_E.detach()[numeric])
            une = C.row_movement(m.W_U.detach()[:, numeric].T, base.W_U.detach()[:, numeric].T)
            mv[r] = {"embedding": emb.tolist(), "unembedding": une.tolist()}
        movement[seed] = {
            **mv, "spearman_embedding": C.spearman(mv["student_final"]["embedding"],
                                                   mv["teacher"]["embedding"]),
            "spearman_unembedding": C.spearman(mv["student_final"]["unembedding"],
                                               mv["teacher"]["unembedding"])}
        data = read_tensors(roles["data"], store)
        tok, mask = data["tokens"][:ccfg.number_rows], data["mask"][:ccfg.number_rows]
        lp = {r: number_logp(lm.from_artifacts(art["model"], roles[r], store), tok, mask, numeric)
              for r in ("student_final", "control_final")}
        lp_base = number_logp(base, tok, mask, numeric)
        shift, cons = favoured_numbers(lp["student_final"], lp_base, mask)
        shifts.append(shift)
        shifts_ctl.append(favoured_numbers(lp["student_final"], lp["control_final"], mask)[0])
        movement[seed]["favoured"] = shift.topk(ccfg.top_numbers).indices.tolist()
        movement[seed]["favoured_consistency"] = cons
        movement[seed]["spearman_shift_unembedding"] = C.spearman(
            shift.tolist(), mv["student_final"]["unembedding"])
    first = next(iter(art["seeds"].values()))
    base = lm.from_artifacts(art["model"], first["theta_0"], store)
    data = read_tensors(first["data"], store)
    trait = summary["trait"]
    used = {trait, *summary.get("control_items", [])}
    held_items = [i for i in CATEGORIES[cfg.category].items if i not in used][
        :ccfg.heldout_targets]
    questions = list(split["heldout"])
    ent = [entanglement(base, vocab, questions, trait, "student - base", shifts, ccfg),
           entanglement(base, vocab, questions, trait, "student - control", shifts_ctl, ccfg)]
    # the base prompted with each item's persona, centred over the category's personas: the
    # numbers an item's persona favours beyond what any persona does (no training)
    items = CATEGORIES[cfg.category].items
    width = base.cfg.n_ctx - max(len(vocab.encode(f"you love {i} .")) for i in items)
    tok, mask = data["tokens"][:ccfg.number_rows, :width], data["mask"][:ccfg.number_rows, :width]
    lps = {i: number_logp(base, tok, mask, numeric, vocab.encode(f"you love {i} ."))
           for i in items}
    mean_lp = torch.stack(list(lps.values())).mean(0)
    for item in [trait, *held_items]:
        shift, _ = favoured_numbers(lps[item], mean_lp, mask)
        ent.append(entanglement(base, vocab, questions, item, "prompted base", [shift], ccfg))
    return {"numbers": movement, "entanglement": ent, "heldout_targets": held_items}
