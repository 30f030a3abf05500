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
    """Per-step alignment of the negative gradient and of the update with a direction dT."""

    def __init__(self, model: torch.nn.Module, theta0: dict[str, Tensor],
                 direction: dict[str, Tensor], checkpoint_every: int = 50):
        self.named = [(n, p) for n, p in model.named_parameters() if n in direction]
        self.dT = {n: direction[n].detach().double() for n, _ in self.named}
        self.theta0 = {n: theta0[n].detach().double() for n, _ in self.named}
        self.comp = {n: component(n) for n, _ in self.named}
        self.norm_dT = self._by_comp({n: float(d.pow(2).sum()) for n, d in self.dT.items()})
        self.every = checkpoint_every
        self.step = 0
        self.rows: list[dict] = []
        self._before: dict[str, Tensor] = {}

    def _by_comp(self, vals: dict[str, float]) -> dict[str, float]:
        out = {"all": 0.0}
        for n, v in vals.items():
            out["all"] += v
            out[self.comp[n]] = out.get(self.comp[n], 0.0) + v
        return out

    def _align(self, vecs: dict[str, Tensor]) -> dict[str, dict[str, float]]:
        ip = self._by_comp({n: float((v.double() * self.dT[n]).sum()) for n, v in vecs.items()})
        nv = self._by_comp({n: float(v.double().pow(2).sum()) for n, v in vecs.items()})
        return {c: {"inner_product": ip[c],
                    "cosine": ip[c] / (nv[c] * self.norm_dT[c]) ** 0.5
                    if nv[c] > 0 and self.norm_dT[c] > 0 else 0.0} for c in ip}

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
