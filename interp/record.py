"""The distillation recorder: optimizer hooks that reduce every step to alignment numbers.

Attached to an optimizer (``Recorder.attach``), it needs no edit to the training loop: a
step pre-hook reads the gradient and snapshots the parameters, a post-hook reads the
update the optimizer actually applied. Each step is reduced on the fly to inner products
and cosines with dT per component, so nothing large is kept per step; weight deltas are
kept only at checkpoints (as cumulative cosines).
"""

from __future__ import annotations

import torch
from torch import Tensor

from interp.alignment import component


class Recorder:
    """Per-step alignment of the negative gradient and of the update with a direction dT.

    ``batched=True`` is for models stacked along a first axis (the digits study trains all
    seeds as one batch): every number is then a list, one per model."""

    def __init__(self, model: torch.nn.Module | dict[str, Tensor], theta0: dict[str, Tensor],
                 direction: dict[str, Tensor], checkpoint_every: int = 50,
                 batched: bool = False):
        params = model.items() if isinstance(model, dict) else model.named_parameters()
        self.batched = batched
        self.named = [(n, p) for n, p in params if n in direction]
        self.dT = {n: direction[n].detach().double() for n, _ in self.named}
        self.theta0 = {n: theta0[n].detach().double() for n, _ in self.named}
        self.comp = {n: component(n) for n, _ in self.named}
        self.norm_dT = self._by_comp({n: self._sum(d.pow(2)) for n, d in self.dT.items()})
        self.every = checkpoint_every
        self.step = 0
        self.rows: list[dict] = []
        self._before: dict[str, Tensor] = {}

    def _sum(self, t: Tensor) -> Tensor:  # a scalar, or one number per stacked model
        return t.flatten(1).sum(1) if self.batched else t.sum()

    def _by_comp(self, vals: dict[str, Tensor]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for n, v in vals.items():
            out["all"] = out.get("all", 0) + v
            out[self.comp[n]] = out.get(self.comp[n], 0) + v
        return out

    def _align(self, vecs: dict[str, Tensor]) -> dict[str, dict[str, float | list[float]]]:
        ip = self._by_comp({n: self._sum(v.double() * self.dT[n]) for n, v in vecs.items()})
        nv = self._by_comp({n: self._sum(v.double().pow(2)) for n, v in vecs.items()})
        out = {}
        for c in ip:
            den = (nv[c] * self.norm_dT[c]).sqrt()
            cos = torch.where(den > 0, ip[c] / den.clamp(min=1e-300), torch.zeros_like(den))
            out[c] = {"inner_product": ip[c].tolist(), "cosine": cos.tolist()}
        return out

    def attach(self, opt: torch.optim.Optimizer) -> Recorder:
        opt.register_step_pre_hook(lambda *_: self._pre())
        opt.register_step_post_hook(lambda *_: self._post())
        return self

    @torch.no_grad()
    def _pre(self) -> None:
        self._grad = self._align({n: -p.grad for n, p in self.named if p.grad is not None})
        self._before = {n: p.detach().clone() for n, p in self.named}

    @torch.no_grad()
    def _post(self) -> None:
        self.step += 1
        row = {"step": self.step, "neg_grad": self._grad,
               "update": self._align({n: p.detach() - self._before[n] for n, p in self.named})}
        if self.step == 1 or self.step % self.every == 0:
            row["cumulative"] = self._align({n: p.detach().double() - self.theta0[n]
                                             for n, p in self.named})
        self.rows.append(row)
        self._before = {}
