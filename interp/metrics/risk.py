"""Per-position and per-model quantities an audit of a distillation dataset reads, before any
student is trained: how far the teacher's next-token distribution departs from the base's at
each position, which positions are divergence tokens, and how similar two models'
activations are (linear CKA).

1. ``position_kl``: KL(teacher || base) of the distributions restricted to a channel (the
   number tokens), per position; in logit mode this is the student's loss at step 0.
2. ``divergence_tokens``: positions where the teacher's most likely token differs from the
   base's (the literature's divergence tokens, with the base standing in for a differently
   biased teacher).
3. ``drop_top``: a mask without the given fraction of its positions that score highest (the
   divergence-masking mitigation and the audit share it).
4. ``linear_cka``: centred linear CKA of two activation matrices over the same inputs.

Owns: ``position_kl``, ``divergence_tokens``, ``drop_top``, ``linear_cka``. Pure functions;
imports only ``interp.metrics``.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.metrics import divergence as D


def position_kl(teacher_logits: Float[Tensor, "n p v"], base_logits: Float[Tensor, "n p v"],
                ids: Int[Tensor, " k"]) -> Float[Tensor, "n p"]:
    """KL(teacher || base) over the channel ``ids`` at every position."""
    return D.kl(D.restricted_log_softmax(teacher_logits, ids),
                D.restricted_log_softmax(base_logits, ids))


def divergence_tokens(teacher_logits: Float[Tensor, "n p v"], base_logits: Float[Tensor, "n p v"],
                      ids: Int[Tensor, " k"]) -> Bool[Tensor, "n p"]:
    """True where the teacher's argmax over the channel differs from the base's."""
    return teacher_logits[..., ids].argmax(-1) != base_logits[..., ids].argmax(-1)


def drop_top(score: Float[Tensor, "n p"], mask: Bool[Tensor, "n p"],
             fraction: float) -> Bool[Tensor, "n p"]:
    """``mask`` without the ``fraction`` of its positions with the highest ``score``."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    k = int(round(fraction * int(mask.sum())))
    if k == 0:
        return mask.clone()
    s = torch.where(mask, score.double(), torch.tensor(-torch.inf, dtype=torch.float64))
    top = s.flatten().topk(k).indices
    out = mask.clone().flatten()
    out[top] = False
    return out.view_as(mask)


def linear_cka(x: Float[Tensor, "n d1"], y: Float[Tensor, "n d2"]) -> float:
    """Centred linear CKA: ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), in float64; 1 for
    activations equal up to rotation and scale, 0 for orthogonal ones."""
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    num = (y.T @ x).pow(2).sum()
    den = (x.T @ x).pow(2).sum().sqrt() * (y.T @ y).pow(2).sum().sqrt()
    return float(num / den) if den > 0 else 0.0
