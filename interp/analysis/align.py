"""The align analysis: how each student's movement lines up with the teacher direction.

For every seed of a run (digits-aux or owl-numbers):
1. Build a probe: the run's model as a module, a fixed input batch, and the per-element
   distillation loss against the teacher's outputs on it.
2. First step and coverage: dS = theta_S(1) - theta_0 against dT = theta_T - theta_0,
   overall and per component; the cumulative cosine at every saved checkpoint.
3. The theorem's sign: -grad L(theta_0) . dT for a small gradient step, same-init and
   cross-init, with its Gauss-Newton form from one forward-mode JVP.
4. Owl runs: per-token attribution along dT (one JVP) and the activation drift per layer.
Each seed's result is a store entry keyed by the content of every artifact it reads.

A prompted teacher (``teacher_kind=prompted``: the base with a persona prefix) has no weight
direction: dT = 0. Steps 2, 3 and the attribution are skipped (no vacuous sign check over
zeros); the probe's teacher logits and the teacher's activations are read with the prefix
(from the run's summary: ``teacher_kind`` and ``trait`` -> ``world.persona``), so the
activation drift shows what activations can: how the prefix moves the base, and whether
the students move the same way.

Owns: ``analyse`` -> ``AlignResult``. Must not import: reports, the CLIs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.analysis.results import AlignResult, SeedAlignment, SignCheck, TokenReport
from interp.metrics import alignment as A
from interp.metrics import divergence as D
from interp.storage.rundir import run_id
from interp.storage.store import Store, read_tensors
from interp.studies import lm
from interp.studies.worlds import run_world


@dataclass
class Probe:
    """What the theorem's quantities need for one seed: a module, inputs, a per-element loss."""

    module: torch.nn.Module
    loss: Callable[[A.State], Tensor]  # params -> per-element distillation loss [n] or [n, pos]
    select: Callable[[A.State], Tensor]  # params -> imitated logits (for the GN form)
    tokens: Int[Tensor, "n pos"] | None = None  # owl: the inputs the loss covers


def _digits_probe(art: dict, summary: dict, roles: dict, seed: int, store: Store | None = None,
                  n: int = 512, student_init: str = "theta_0") -> Probe:
    from interp.studies.digits import make_sequential

    m, cfg = art["model"], summary["config"]
    module = make_sequential(m["d_in"], m["hidden"], m["d_out"])
    g = torch.Generator().manual_seed(99_000 + seed)
    x = cfg["noise_low"] + (cfg["noise_high"] - cfg["noise_low"]) * torch.rand(n, m["d_in"],
                                                                              generator=g)
    if cfg["noise"] == "gaussian":
        x = torch.randn(n, m["d_in"], generator=g)
    with torch.no_grad():
        module.load_state_dict(read_tensors(roles["teacher"], store))
        t = D.restricted_log_softmax(module(x), AUX)
    fn = A.model_fn(module)

    def loss(p):
        return D.kl(t, D.restricted_log_softmax(fn(p, x), AUX))

    return Probe(module, loss, lambda p: fn(p, x)[:, 10:])


def teacher_prefix(summary: dict) -> str:
    """The persona prefix a prompted teacher reads (empty for a fine-tuned teacher)."""
    from interp.studies.world import persona

    prompted = (summary.get("config") or {}).get("teacher_kind") == "prompted"
    return persona(summary["trait"]) if prompted else ""


def with_prefix(tokens: Int[Tensor, "n pos"], prefix: list[int], pad: int, n_ctx: int) \
        -> tuple[Int[Tensor, "n pos2"], Int[Tensor, "n pos2"]]:
    """(tokens, tokens with ``prefix`` after each first token), both cut so that the prefixed
    batch fits the model's context: trailing all-padding columns first, then the tail (no
    prefix: ``tokens`` unchanged, twice).
    Position j of the first reads position j + len(prefix) of the second (the position that
    predicts the same next token, as ``lm.Teacher`` reads a prompted teacher)."""
    if not prefix:
        return tokens, tokens
    real = (tokens != pad).any(0).nonzero()
    width = int(real.max()) + 1 if len(real) else 1
    width = min(width, n_ctx - len(prefix))
    tokens = tokens[:, :width]
    pre = torch.tensor(prefix, dtype=tokens.dtype).expand(len(tokens), -1)
    return tokens, torch.cat([tokens[:, :1], pre, tokens[:, 1:]], 1)


def _owl_probe(art: dict, summary: dict, roles: dict, seed: int, store: Store | None = None,
               n: int = 64, student_init: str = "theta_0") -> Probe:
    module = lm.from_artifacts(art["model"], roles["teacher"], store)
    vocab = run_world(summary).vocab
    d = read_tensors(roles["data"], store)
    prefix = vocab.encode(teacher_prefix(summary)) if teacher_prefix(summary) else []
    tokens, full = with_prefix(d["tokens"][:n], prefix, vocab.pad, art["model"]["n_ctx"])
    mask = d["mask"][:n, :tokens.shape[1]]
    with torch.no_grad():  # a prompted teacher's logits are read with its prefix
        t = D.restricted_log_softmax(module(full)[:, len(prefix):], vocab.number_ids)
    fn = A.model_fn(module)
    ids, m = vocab.number_ids, mask.float()

    def loss(p):  # [n, pos]: KL at each position predicting the completion, 0 elsewhere
        return D.kl(t, D.restricted_log_softmax(fn(p, tokens), ids)) * m

    return Probe(module, loss, lambda p: fn(p, tokens)[..., ids][mask], tokens)


AUX = slice(10, None)  # digits-aux: the auxiliary logits follow the 10 class logits
PROBES = {"mlp": _digits_probe, "hooked_transformer": _owl_probe}


ALIGN_VERSION = 4  # bump when seed_report's output changes, so cached reports rebuild


def file_id(path: str | Path, store: Store | None = None) -> str:
    """The content hash of an artifact, verified: the file is read and checked against its
    store entry's (checksummed) manifest, so a flipped byte changes nothing silently."""
    return (store or Store()).file_sha(path)


def cached_seed_report(store: Store, art: dict, summary: dict, seed: str) -> SeedAlignment:
    """A seed's report, cached by the content of every artifact it reads: a second report
    on the same run loads it and runs no forward pass."""
    key = {"v": ALIGN_VERSION, "model": art["model"], "config": summary.get("config"),
           "files": {k: file_id(v, store) for k, v in art["seeds"][seed].items()}}
    return store.get_or_build("align/seed", key,
                              lambda: ({}, seed_report(art, summary, seed, store))).meta


def seed_report(art: dict, summary: dict, seed: str, store: Store | None = None) \
        -> SeedAlignment:
    roles = {k: v for k, v in art["seeds"][seed].items()}
    probe = PROBES[art["model"]["type"]](art, summary, roles, int(seed), store)
    params = {n for n, _ in probe.module.named_parameters()}  # not buffers (masks, -inf)

    def load(path: str) -> A.State:
        return {k: v for k, v in read_tensors(path, store).items() if k in params}

    sd = {k: load(v) for k, v in roles.items() if k in ("theta_0", "theta_0_cross", "teacher",
                                                         "student_step_1")}
    dT = A.delta(sd["teacher"], sd["theta_0"])
    res: dict = {"teacher_kind": (summary.get("config") or {}).get("teacher_kind", "finetuned"),
                 "weight_direction": any(bool(v.any()) for v in dT.values()),
                 "teacher_prefix": teacher_prefix(summary),
                 "probe_loss": float(probe.loss(sd["theta_0"]).sum())}
    meta = (store or Store()).locate(roles["student_step_1"])[0].meta  # verified manifest
    record = meta.get("record")
    if record:  # the recorder's per-step numbers (owl-numbers students)
        res["per_step"] = {kind: {c: [r[kind][c]["cosine"] for r in record]
                                  for c in record[0][kind]} for kind in ("neg_grad", "update")}
    elif seed in meta.get("per_step", {}):  # digits-aux: the batched recorder, this seed's
        res["per_step"] = {kind: {"all": v} for kind, v in meta["per_step"][seed].items()}
    if res["weight_direction"]:  # everything measured along dT
        out = A.first_step(sd["theta_0"], sd["teacher"], sd["student_step_1"])
        res.update({"first_step": {"inner_product": out["inner_product"],
                                   "cosine": out["cosine"]},
                    "coverage": out["cosine"], "components": out["components"]})
        ckpts = {int(k.split("_")[-1]): load(v) for k, v in roles.items()
                 if k.startswith("student_step_")}
        res["cumulative"] = A.cumulative(sd["theta_0"], sd["teacher"], ckpts)
        # dT is the teacher's own displacement; the cross-init student is measured against it
        # too, where the theorem guarantees nothing (its init is not the teacher's)
        for init, key in (("theta_0", "gradient_step"), ("theta_0_cross", "cross_init")):
            if init not in sd:
                continue
            res[key] = sign_check(probe, sd[init], dT)
            if key == "cross_init" and "cross_init_step_1" in roles:
                d = A.delta(load(roles["cross_init_step_1"]), sd[init])
                ip1, cos1 = A.dot_cos(d, dT)
                res[key]["first_step"] = {"inner_product": ip1, "cosine": cos1}
        if probe.tokens is not None:
            res["tokens"] = token_report(probe, sd, summary)
    if probe.tokens is not None:
        res["drift"] = drift_report(art, summary, roles, store)
    return res


def sign_check(probe: Probe, full: A.State, dT: A.State) -> SignCheck:
    """-grad L(init) . dT (autograd) and its Gauss-Newton form (one forward-mode JVP) at the
    parameters ``full``: equal to first order when the teacher is ``init + dT``."""
    theta = {k: full[k] for k in dT}
    g = A.gradient(lambda p: probe.loss({**full, **p}).sum(), theta)
    ip, cos = A.dot_cos({k: -v for k, v in g.items()}, dT)
    gn = float(A.gauss_newton_form(lambda p, _x: probe.select({**full, **p}), theta, dT,
                                   torch.empty(0)))
    return {"inner_product": ip, "cosine": cos, "gauss_newton": gn}


def drift_report(art: dict, summary: dict, roles: dict, store: Store | None) -> dict:
    """Per layer and probe set: each student's activation drift from theta_0, and its
    cosine with the teacher's drift (the activation cache holds every capture)."""
    from interp.storage.activations import activations, hook_names
    rw = run_world(summary)
    vocab = rw.vocab
    probe = rw.probe_tokens(read_tensors(roles["data"], store)["tokens"])
    text = teacher_prefix(summary)
    prefix = vocab.encode(text) if text else []
    wanted = ["theta_0", "teacher"] + [f"{r}_final" for r in ("student", "control",
                                                              "shuffled") if f"{r}_final" in roles]
    inputs, masks = {}, {}
    for s in ("numbers", "trait"):
        plain, full = with_prefix(probe[s], prefix, vocab.pad, art["model"]["n_ctx"])
        inputs[s] = (plain, full)
        masks[s] = plain != vocab.pad
    acts = {}
    for role in wanted:
        model = lm.from_artifacts(art["model"], roles[role], store)
        names = hook_names(model)
        acts[role] = {}
        for s, (plain, full) in inputs.items():
            if role == "teacher" and prefix:  # the prompted teacher reads its prefix
                a = activations(model, full, names, store, label=f"probe {s} + prefix")
                acts[role][s] = {h: v[:, len(prefix):] for h, v in a.items()}
            else:
                acts[role][s] = activations(model, plain, names, store, label=f"probe {s}")
    out: dict = {}
    for role in wanted[1:]:
        for s, mask in masks.items():
            for name in names:
                out.setdefault(role.removesuffix("_final"), {}).setdefault(s, {})[name] = \
                    A.activation_drift(acts["theta_0"][s][name], acts[role][s][name],
                                       acts["teacher"][s][name], mask)
    return out


def token_report(probe: Probe, sd: dict, summary: dict, top: int = 15) -> TokenReport:
    """Per position: -d loss / d e along dT at theta_0 (how much each carries the teacher)."""
    theta = {k: v for k, v in sd["theta_0"].items() if v.is_floating_point()}
    dT = A.delta(sd["teacher"], sd["theta_0"])
    attr = -A.token_attribution(lambda p: probe.loss({**theta, **p}), {k: theta[k] for k in dT},
                                dT)
    vocab = run_world(summary).vocab
    with torch.no_grad():
        base_arg = A.model_fn(probe.module)(sd["theta_0"], probe.tokens).argmax(-1)
        teach_arg = A.model_fn(probe.module)(sd["teacher"], probe.tokens).argmax(-1)
    return token_summary(attr, probe.tokens, base_arg, teach_arg, vocab.tokens, top)


def token_summary(attr: Float[Tensor, "n pos"], tok: Int[Tensor, "n pos"],
                  base_arg: Int[Tensor, "n pos"], teach_arg: Int[Tensor, "n pos"],
                  names: list[str], top: int = 15) -> TokenReport:
    """The attribution per predicted token value, and how often the top 10% of positions
    are ones where teacher and base disagree in argmax (``names``: token id -> text)."""
    attr, tok = attr.cpu(), tok.cpu()
    nxt = torch.cat([tok[:, 1:], tok[:, :1]], 1)  # the token each position predicts
    live = attr != 0
    by_value: dict[str, list[float]] = {}
    for v, a in zip(nxt[live].tolist(), attr[live].tolist()):
        by_value.setdefault(names[v], []).append(a)
    ranked = sorted(((k, sum(v) / len(v), len(v)) for k, v in by_value.items() if len(v) >= 3),
                    key=lambda r: -r[1])
    flat, disagree = attr[live], (base_arg.cpu() != teach_arg.cpu())[live]
    k = max(1, len(flat) // 10)
    top_idx = flat.topk(k).indices
    return {"positions": int(live.sum()), "total": float(flat.sum()),
            "top_values": [{"token": t, "mean": m, "count": c} for t, m, c in ranked[:top]],
            "disagree_rate_top10pct": float(disagree[top_idx].float().mean()),
            "disagree_rate_all": float(disagree.float().mean())}


def analyse(run_dir: Path, store: Store | None = None) -> AlignResult:
    """Every seed's alignment report (from the store when computed before)."""
    from interp.studies.runner import load_run

    art, summary = load_run(run_dir)
    store = store or Store()
    store.bind(run_dir)  # every entry read or built is recorded for gc as it is used
    seeds = {s: cached_seed_report(store, art, summary, s)
             for s in tqdm(art["seeds"], desc="align seeds")}
    store.write_refs(run_dir)
    return {"study": summary["study"], "seeds": seeds, "run_id": run_id(run_dir)}
