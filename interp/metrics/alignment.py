"""Alignment of a student's movement with the teacher direction dT = theta_T - theta_0.

Plain functions over state dicts and tensors, testable without a trained model. The
theorem (Cloud et al. 2025, section 6.1): one small gradient step of imitation gives an
update dS with dS . dT = eps * E_x[(J dT)^T M (J dT)] + O(eps^2) >= 0, where J is the
output Jacobian and M the softmax covariance. ``gauss_newton_form`` computes that
bracket with one forward-mode JVP per batch; ``token_attribution`` splits the teacher
signal over positions with one JVP per batch.

Owns: deltas, first-step and cumulative alignment, the GN form, token attribution, drift.
No I/O; imports only ``interp.metrics``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor
from torch.func import functional_call, jvp

from interp.metrics.vectors import cosine, inner, norm, ratio

State = dict[str, Tensor]

# parameter name -> component, first match wins (TransformerLens names, then nn.Sequential)
COMPONENTS: list[tuple[str, str]] = [
    (r"^(embed|pos_embed)\.", "embed"),
    (r"^blocks\.(\d+)\.attn\.", "blocks.{0}.attn"),
    (r"^blocks\.(\d+)\.mlp\.", "blocks.{0}.mlp"),
    (r"^blocks\.(\d+)\.ln\d\.", "layer_norms"),
    (r"^ln_final\.", "layer_norms"),
    (r"^unembed\.", "unembed"),
    (r"^(\d+)\.", "linear{0}"),
]


def component(name: str) -> str:
    for pattern, label in COMPONENTS:
        m = re.match(pattern, name)
        if m:
            return label.format(*m.groups())
    return "other"


def delta(a: State, b: State) -> State:
    """a - b for every floating tensor both share, skipping constant non-finite buffers
    (TransformerLens's ``IGNORE`` = -inf attention mask value), so that a full state dict
    gives a finite direction. A non-finite tensor that differs between ``a`` and ``b`` (a
    diverged weight) is an error, not a silent skip."""
    out = {}
    for k in a:
        if k not in b or not a[k].is_floating_point():
            continue
        if not (torch.isfinite(a[k]).all() and torch.isfinite(b[k]).all()):
            if torch.equal(a[k], b[k]):
                continue  # a constant buffer such as IGNORE: no direction in it
            raise ValueError(f"{k} is not finite and differs between the two state dicts "
                             "(a diverged weight?); check the checkpoints")
        out[k] = a[k].float() - b[k].float()
    return out


def dot_cos(u: State, v: State, names: list[str] | None = None) -> tuple[float, float]:
    """Inner product and cosine of two state dicts over ``names`` (default: shared keys)."""
    names = names if names is not None else [k for k in u if k in v]
    ip = sum(inner(u[k], v[k]) for k in names)
    nu = sum(inner(u[k], u[k]) for k in names) ** 0.5
    nv = sum(inner(v[k], v[k]) for k in names) ** 0.5
    return ip, ratio(ip, nu * nv)


def by_component(u: State, v: State) -> dict[str, dict[str, float]]:
    groups: dict[str, list[str]] = {}
    for k in u:
        if k in v:
            groups.setdefault(component(k), []).append(k)
    out = {}
    for comp, names in sorted(groups.items()):
        ip, cos = dot_cos(u, v, names)
        out[comp] = {"inner_product": ip, "cosine": cos}
    return out


def first_step(theta0: State, teacher: State, step1: State) -> dict:
    """dS = theta_S(1) - theta_0 against dT = theta_T - theta_0: overall and per component."""
    dS, dT = delta(step1, theta0), delta(teacher, theta0)
    ip, cos = dot_cos(dS, dT)
    return {"inner_product": ip, "cosine": cos, "components": by_component(dS, dT)}


def cumulative(theta0: State, teacher: State, checkpoints: dict[int, State]) -> dict:
    """Per checkpoint step: cosine of theta_S(t) - theta_0 with dT, overall and per component."""
    dT = delta(teacher, theta0)
    out = {}
    for step, st in sorted(checkpoints.items()):
        d = delta(st, theta0)
        out[step] = {"cosine": dot_cos(d, dT)[1],
                     "components": {c: v["cosine"] for c, v in by_component(d, dT).items()}}
    return out


OutputFn = Callable[[State, Tensor], Tensor]  # (params, inputs) -> logits [..., n_out]


def model_fn(module: torch.nn.Module) -> OutputFn:
    return lambda params, x: functional_call(module, params, (x,))


def softmax_quadratic(p_logits: Float[Tensor, "*batch k"], tangent: Float[Tensor, "*batch k"]) \
        -> Float[Tensor, "*batch"]:
    """t^T (diag(p) - p p^T) t over the last axis: the softmax covariance form, >= 0."""
    p = F.softmax(p_logits, -1)
    return (p * tangent.pow(2)).sum(-1) - (p * tangent).sum(-1).pow(2)


def gauss_newton_form(fn: OutputFn, params: State, direction: State, x: Tensor,
                      select: Callable[[Tensor], Tensor] = lambda o: o) -> Tensor:
    """Sum over inputs of (J d)^T M (J d), from one forward-mode JVP (``select`` picks the
    imitated logits, e.g. the auxiliary ones or the number channel). Summed, not averaged,
    so that it matches -grad L . d for a loss summed over the same inputs to first order."""
    out, tangent = jvp(lambda p: select(fn(p, x)), (params,), (direction,))
    return softmax_quadratic(out, tangent).sum()


def token_attribution(loss_fn: Callable[[State], Tensor], params: State,
                      direction: State) -> Float[Tensor, "*batch"]:
    """d/de loss_i(params + e * direction) at e=0 for every element i of the loss tensor
    (e.g. every position of every sequence) in one JVP."""
    _, tangent = jvp(loss_fn, (params,), (direction,))
    return tangent


def gradient(loss_fn: Callable[[State], Tensor], params: State) -> State:
    p = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    loss = loss_fn(p)
    grads = torch.autograd.grad(loss, list(p.values()), allow_unused=True)
    return {k: (g if g is not None else torch.zeros_like(p[k])) for k, g in zip(p, grads)}


def activation_drift(base: Float[Tensor, "n pos d"], moved: Float[Tensor, "n pos d"],
                     teacher: Float[Tensor, "n pos d"], mask: Bool[Tensor, "n pos"]) -> dict:
    """How far a model's activations moved from the base's, and whether toward the teacher's.

    base, moved, teacher: [n, pos, d] at one hook; mask: [n, pos] real positions.
    ``relative``: |moved - base| / |base| over masked positions; ``cosine``: of the
    flattened shift (moved - base) with the teacher's shift (teacher - base)."""
    m = mask[..., None].to(base.dtype)
    d_moved, d_teacher = (moved - base) * m, (teacher - base) * m
    return {"relative": ratio(norm(d_moved), norm(base * m)),
            "cosine": cosine(d_moved, d_teacher)}
