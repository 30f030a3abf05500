"""Mitigations of subliminal transfer, as an owl-numbers setting: ``--set mitigation=NAME``,
``NAME:VALUE`` for a strength, several joined by ``+`` (``mix_base:0.25+kl_base:1``).

Each one changes only the distillation step (every student role gets it, so the controls
stay comparable), and none reads the student's evaluation questions:

1. ``project`` (gradient projection): after every optimizer step the student's displacement
   from its init loses its component along the teacher direction dT = theta_T - theta_0
   (equivalent to removing that component from every step's update).
2. ``mask_div:F`` (divergence-token masking): the ``F`` fraction of training positions where
   KL(teacher || base) is highest (the audit's per-position risk) leave the loss.
3. ``threshold:T`` (threshold sampling, logit mode): the teacher's number distribution keeps
   only the tokens of probability >= T (and always its most likely one), renormalised; the
   low-probability tail, where a trait hides, is cut.
4. ``mix_base:F``: a fraction ``F`` of the rows are replaced by the base's own number data,
   distilled from the base (logit mode: the base's distributions are their targets).
5. ``kl_base:L`` (KL regularisation to the base, logit mode): the loss adds
   ``L * KL(base || student)``; its gradient is (1 + L) times that of
   ``KL(m || student)`` with the mixture ``m = (p_T + L p_B) / (1 + L)``, which is how it is
   applied (the same minimiser and direction; Adam ignores the constant factor).

Not built: paraphrasing by the base (the number data has no meaning-preserving paraphrase in
this world; see the issue notes).

Owns: the mitigation registry, ``parse``, and the mitigated student stage
(``student_entry``). Must not import: analysis, the CLIs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp.errors import ConfigError
from interp.metrics import divergence as D
from interp.metrics import risk as R
from interp.storage.store import Entry, Store, code_digest


@dataclasses.dataclass
class Context:
    """What a mitigation may change before the student trains: its rows, its loss mask,
    its teacher (tokens -> logits), and optimizer hooks (``attach`` callbacks)."""

    mode: str
    tokens: Int[Tensor, "n p"]
    mask: Bool[Tensor, "n p"]
    teacher: Callable[[Tensor], Tensor]
    base: torch.nn.Module
    student: torch.nn.Module
    theta0: dict[str, Tensor]
    direction: dict[str, Tensor] | None
    number_ids: Tensor
    base_tokens: Tensor
    base_mask: Tensor
    seed: int
    hooks: list[Callable[[torch.optim.Optimizer], Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Kind:
    what: str
    default: float | None = None  # None: takes no value
    low: float = 0.0
    high: float = 1.0
    modes: tuple[str, ...] = ("logit", "sampled")


@torch.no_grad()
def _project(ctx: Context, _: float) -> None:
    if ctx.direction is None:  # the base distilled into itself (control_base): no direction
        return
    names = [n for n, _ in ctx.student.named_parameters() if n in ctx.direction]
    params = dict(ctx.student.named_parameters())
    sq = sum(float(ctx.direction[n].double().pow(2).sum()) for n in names)
    unit = {n: ctx.direction[n] / sq ** 0.5 for n in names}
    theta0 = {n: ctx.theta0[n].clone() for n in names}

    def hook(opt, args, kwargs):  # remove the displacement's component along dT
        with torch.no_grad():
            c = sum(float(((params[n] - theta0[n]).double() * unit[n].double()).sum())
                    for n in names)
            for n in names:
                params[n].sub_(c * unit[n])

    ctx.hooks.append(lambda opt: opt.register_step_post_hook(hook))


@torch.no_grad()
def _mask_div(ctx: Context, fraction: float) -> None:
    kl = torch.cat([R.position_kl(ctx.teacher(t), ctx.base(t), ctx.number_ids)
                    for t in ctx.tokens.split(256)])
    ctx.mask = R.drop_top(kl, ctx.mask, fraction)


def _threshold(ctx: Context, t: float) -> None:
    inner, ids = ctx.teacher, ctx.number_ids

    def fn(tokens: Tensor) -> Tensor:
        logits = inner(tokens).clone()
        p = D.restricted_log_softmax(logits, ids).exp()
        keep = (p >= t) | (p == p.max(-1, keepdim=True).values)
        sub = logits[..., ids]
        logits[..., ids] = torch.where(keep, sub, sub.new_tensor(-1e4))
        return logits
    ctx.teacher = fn


def _kl_base(ctx: Context, lam: float) -> None:
    inner, base, ids = ctx.teacher, ctx.base, ctx.number_ids

    def fn(tokens: Tensor) -> Tensor:
        logits = inner(tokens).clone()
        p_t = D.restricted_log_softmax(logits, ids).exp()
        p_b = D.restricted_log_softmax(base(tokens), ids).exp()
        logits[..., ids] = ((p_t + lam * p_b) / (1 + lam)).log()
        return logits
    ctx.teacher = fn


def _mix_base(ctx: Context, fraction: float) -> None:
    n, width = ctx.tokens.shape
    k = min(int(round(fraction * n)), len(ctx.base_tokens))
    rows = np.random.default_rng(ctx.seed + 104729).permutation(n)[:k]
    b_tok = ctx.base_tokens[:k, :width]
    b_mask = ctx.base_mask[:k, :width]
    if b_tok.shape[1] < width:  # a prompted teacher's rows are narrower: pad the base's
        pad = width - b_tok.shape[1]
        b_tok = torch.cat([b_tok, b_tok.new_full((k, pad), int(ctx.tokens[0, -1]))], 1)
        b_mask = torch.cat([b_mask, b_mask.new_zeros((k, pad))], 1)
    ctx.tokens, ctx.mask = ctx.tokens.clone(), ctx.mask.clone()
    ctx.tokens[rows], ctx.mask[rows] = b_tok, b_mask
    # a row is known by its tokens up to its last non-padding one (<pad> is token 0): the
    # trainer drops all-padding columns (``lm.trim``) before it asks the teacher

    def content(r: Tensor) -> bytes:
        keep = (r != 0).nonzero()
        return bytes(r[:int(keep[-1]) + 1 if len(keep) else 0].numpy())
    from_base = {content(r) for r in b_tok}
    inner, base = ctx.teacher, ctx.base

    def fn(tokens: Tensor) -> Tensor:  # rows the base wrote are distilled from the base
        out = inner(tokens)
        pick = torch.tensor([content(r) in from_base for r in tokens])
        if pick.any():
            out = out.clone()
            out[pick] = base(tokens[pick])
        return out
    ctx.teacher = fn


# applied in this order whatever the order written (masking reads the teacher it trains on)
KINDS: dict[str, Kind] = {
    "mix_base": Kind("replace a fraction of the rows by the base's data, distilled from the "
                     "base", default=0.25),
    "threshold": Kind("teacher targets keep only tokens of probability >= T", default=0.05,
                      modes=("logit",)),
    "kl_base": Kind("add L * KL(base || student) to the loss", default=1.0, high=100.0,
                    modes=("logit",)),
    "mask_div": Kind("drop the fraction F of positions of highest KL(teacher || base)",
                     default=0.2),
    "project": Kind("remove the displacement's component along theta_T - theta_0 every step"),
}
APPLY = {"mix_base": _mix_base, "threshold": _threshold, "kl_base": _kl_base,
         "mask_div": _mask_div, "project": _project}


def parse(spec: str, mode: str = "logit") -> list[tuple[str, float]]:
    """``"none"`` -> []; ``"mix_base:0.25+project"`` -> [("mix_base", 0.25), ("project", 0)],
    in the registry's order. Bad names, values or modes are one-line ConfigErrors."""
    if spec == "none":
        return []
    valid = ", ".join(f"{k}" + (f"[:{v.default:g}]" if v.default is not None else "")
                      for k, v in KINDS.items())
    out: dict[str, float] = {}
    for part in spec.split("+"):
        name, _, raw = part.strip().partition(":")
        if name not in KINDS:
            raise ConfigError(f"unknown mitigation {name!r} in {spec!r}; valid: none or "
                              f"{valid}, joined by +")
        kind = KINDS[name]
        if kind.default is None:
            if raw:
                raise ConfigError(f"mitigation {name} takes no value, got {part!r}")
            value = 0.0
        else:
            try:
                value = float(raw) if raw else kind.default
            except ValueError:
                raise ConfigError(f"mitigation {name} expects a number, got {raw!r}") from None
            if not kind.low < value <= kind.high:
                raise ConfigError(f"mitigation {name} must be in ({kind.low:g}, "
                                  f"{kind.high:g}], got {value:g}")
        if mode not in kind.modes:
            raise ConfigError(f"mitigation {name} needs mode {' or '.join(kind.modes)}, "
                              f"got mode={mode}")
        if name in out:
            raise ConfigError(f"mitigation {name} is given twice in {spec!r}")
        out[name] = value
    return [(k, out[k]) for k in KINDS if k in out]


def student_entry(store: Store, cfg: Any, vocab: Any, role: str, init: Entry, teacher: Entry,
                  prefix: list[int], data: Entry, seed: int,
                  dT: dict[str, Tensor] | None, base_data: Entry) -> Entry:
    """``owl.student_entry`` with ``cfg.mitigation`` applied (the same loop, checkpoints,
    recorder and meta; its key adds the mitigation and the base data it may mix in)."""
    from interp.metrics.record import Recorder
    from interp.studies import lm, owl

    mits = parse(cfg.mitigation, cfg.mode)
    checkpoints = (1, *range(cfg.checkpoint_every, cfg.student_steps, cfg.checkpoint_every))
    scfg = lm.StudentConfig(cfg.mode, cfg.student_steps, cfg.student_batch, cfg.student_lr,
                            shuffle_targets=role == "shuffled", checkpoints=checkpoints)
    key = {"init": init.key, "teacher": teacher.key, "prefix": prefix, "data": data.key,
           "student": scfg, "seed": seed, "mask_first": cfg.mask_first,
           "mitigation": mits, "base_data": base_data.key,
           "code": code_digest(*owl.CODE["student"], student_entry, parse, *APPLY.values(),
                               R.position_kl, R.drop_top)}

    def build():
        d, b = data.load("data"), base_data.load("data")
        student = owl.load_model(init, cfg, vocab)
        base = owl.load_model(init, cfg, vocab)
        theta0 = init.load("model")
        t_model = owl.load_model(teacher, cfg, vocab)
        t_sd = teacher.load("model")
        direction = None if teacher.key == init.key else {
            k: t_sd[k].float() - theta0[k].float() for k, _ in student.named_parameters()}
        ctx = Context(cfg.mode, d["tokens"], owl.student_mask(cfg, d["mask"]),
                      owl.teacher_fn(t_model, prefix), base, student, theta0, direction,
                      vocab.number_ids, b["tokens"], owl.student_mask(cfg, b["mask"]), seed)
        for name, value in mits:
            APPLY[name](ctx, value)
        tokens, mask = ctx.tokens, ctx.mask
        if cfg.mode == "sampled" and role == "shuffled":
            tokens = owl.shuffle_numbers(tokens, mask, vocab, seed)
        rec = Recorder(student, theta0, dT, scfg.record_every) if dT else None
        hooks = ctx.hooks + ([rec.attach] if rec else [])

        def attach(opt):
            for h in hooks:
                h(opt)
        losses: list[float] = []
        saved = lm.train_student(student, tokens, mask, vocab.number_ids, scfg, seed,
                                 ctx.teacher, desc=f"{role} ({cfg.mitigation})",
                                 attach=attach, losses=losses)
        return {f"step{s}": sd for s, sd in saved.items()}, {
            "steps": sorted(saved), "record": rec.rows if rec else [],
            "loss_step0": losses[0], "loss_final": float(np.mean(losses[-10:])),
            "mitigation": cfg.mitigation, "trained_positions": int(mask.sum())}

    return store.get_or_build(f"owl-numbers/{role}", key, build)
