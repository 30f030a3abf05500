"""The distillation recorder: optimizer hooks that reduce every step to alignment numbers.

Attached to an optimizer (``Recorder.attach``), it needs no edit to the training loop: a
step pre-hook reads the gradient and snapshots the parameters, a post-hook reads the
update the optimizer actually applied. Each step is reduced on the fly to inner products
and cosines with dT per component, so nothing large is kept per step; weight deltas are
kept only at checkpoints (as cumulative cosines). Parameters are copied into preallocated
flat float32 buffers and each component is one contiguous slice reduced with a dot
product: no per-step allocation of parameter-sized temporaries (which, page-faulted in
fresh every step, cost more than the arithmetic).

Owns: ``Recorder``. No I/O; imports only ``interp.metrics``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from interp.metrics.alignment import component


class Recorder:
    """Per-step alignment of the negative gradient and of the update with a direction dT.

    ``batched=True`` is for models stacked along a first axis (the digits study trains all
    seeds as one batch): every number is then a list, one per model."""

    def __init__(self, model: torch.nn.Module | dict[str, Tensor], theta0: dict[str, Tensor],
                 direction: dict[str, Tensor], checkpoint_every: int = 50,
                 batched: bool = False):
        params = model.items() if isinstance(model, dict) else model.named_parameters()
        self.batched = batched
        # ordered by component, so each component is one contiguous slice of the flat vector
        self.named = sorted(((n, p) for n, p in params if n in direction),
                            key=lambda np_: component(np_[0]))
        names = [n for n, _ in self.named]
        comp = [component(n) for n in names]
        self.comps = sorted(set(comp))
        self.sizes = [sum(p[0].numel() if batched else p.numel()
                          for n, p in self.named if component(n) == c) for c in self.comps]
        self.dT = self._flat([direction[n] for n in names])
        self.theta0 = self._flat([theta0[n] for n in names])
        self.norm_dT = self._dots(self.dT, self.dT)
        self._buf = {k: torch.empty_like(self.dT) for k in ("grad", "before", "now", "diff")}
        self.every = checkpoint_every
        self.step = 0
        self.rows: list[dict] = []
        self._before: Tensor | None = None

    def _flat(self, tensors: list[Tensor], out: Tensor | None = None) -> Tensor:
        """[P] or [models, P] float32, written into ``out`` when given."""
        parts = [t.detach().reshape(t.shape[0], -1) if self.batched else t.detach().reshape(-1)
                 for t in tensors]
        return torch.cat(parts, -1, out=out) if out is not None else torch.cat(parts, -1).float()

    def _dots(self, a: Tensor, b: Tensor) -> Tensor:
        """Per component (and "all" first) the inner product of a and b: [1 + C] or [M, 1 + C],
        in float64 from float32 slices."""
        if self.batched:
            per = [(x * y).sum(-1)
                   for x, y in zip(a.split(self.sizes, -1), b.split(self.sizes, -1))]
        else:
            per = [torch.dot(x, y) for x, y in zip(a.split(self.sizes), b.split(self.sizes))]
        per_t = torch.stack(per, -1).double()
        return torch.cat([per_t.sum(-1, keepdim=True), per_t], -1)

    def _align(self, vec: Tensor) -> dict[str, dict[str, float | list[float]]]:
        ip, nv = self._dots(vec, self.dT), self._dots(vec, vec)
        den = (nv * self.norm_dT).sqrt()
        cos = torch.where(den > 0, ip / den.clamp(min=1e-300), torch.zeros_like(den))
        ip_l, cos_l = ip.movedim(-1, 0).tolist(), cos.movedim(-1, 0).tolist()  # per component
        return {c: {"inner_product": ip_l[i], "cosine": cos_l[i]}
                for i, c in enumerate(["all", *self.comps])}

    def attach(self, opt: torch.optim.Optimizer) -> Recorder:
        opt.register_step_pre_hook(lambda *_: self._pre())
        opt.register_step_post_hook(lambda *_: self._post())
        return self

    @torch.no_grad()
    def _pre(self) -> None:
        g = self._flat([p.grad if p.grad is not None else torch.zeros_like(p)
                        for _, p in self.named], out=self._buf["grad"])
        self._grad = self._align(g.neg_())
        self._flat([p for _, p in self.named], out=self._buf["before"])

    @torch.no_grad()
    def _post(self) -> None:
        self.step += 1
        now = self._flat([p for _, p in self.named], out=self._buf["now"])
        diff = torch.sub(now, self._buf["before"], out=self._buf["diff"])
        row = {"step": self.step, "neg_grad": self._grad, "update": self._align(diff)}
        if self.step == 1 or self.step % self.every == 0:
            row["cumulative"] = self._align(torch.sub(now, self.theta0, out=self._buf["diff"]))
        self.rows.append(row)
