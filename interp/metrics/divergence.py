"""KL divergence between next-token distributions restricted to a subset of the vocabulary.

The one implementation of the distillation loss's core: the owl students (number
channel), the digits students (auxiliary logits) and the alignment probes all call it.
Owns: ``restricted_log_softmax``, ``kl``. Pure functions; imports nothing from interp.
"""

from __future__ import annotations

import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor


def restricted_log_softmax(logits: Float[Tensor, "... v"], ids: Int[Tensor, " k"] | slice) \
        -> Float[Tensor, "... k"]:
    """Log-softmax over a subset of the vocabulary (the number channel, the aux logits)."""
    return F.log_softmax(logits[..., ids], -1)


def kl(teacher_logp: Float[Tensor, "... k"], student_logp: Float[Tensor, "... k"]) \
        -> Float[Tensor, ...]:
    """KL(teacher || student) per element, from log-probabilities over the last axis."""
    return (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)
