"""Pure computations of the fingerprint analysis: feature shifts, rankings, edits, rates.

Plain functions over tensors (and an SAE's weights), testable on synthetic activations
with a planted feature, no trained model needed. Owns: feature shifts, rankings, edits
and rates. No I/O; imports only ``interp.metrics``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from interp.metrics.vectors import cosine


def mean_shift(a: Float[Tensor, "n f"], b: Float[Tensor, "m f"]) -> Float[Tensor, " f"]:
    """Mean of ``a`` minus mean of ``b`` over rows (token positions): a feature shift, or,
    on residual activations, the linear baseline's difference-of-means trait direction."""
    return a.float().mean(0) - b.float().mean(0)


def correlation(x: Float[Tensor, " f"], y: Float[Tensor, " f"]) -> float:
    """Pearson correlation of two shift vectors (0 when either is constant)."""
    return cosine(x.double() - x.double().mean(), y.double() - y.double().mean())


def shared_ranking(teacher_shift: Float[Tensor, " f"], student_shift: Float[Tensor, " f"]) \
        -> Int[Tensor, " f"]:
    """Features ordered by shared shift: the product is large when the teacher (vs base) and
    the student (vs control) move a feature the same way and far."""
    return (teacher_shift * student_shift).argsort(descending=True)


def feature_contribution(feats: Float[Tensor, "... f"], W_dec: Float[Tensor, "f d"],
                         idx: Int[Tensor, " k"]) -> Float[Tensor, "... d"]:
    """The part of the SAE reconstruction written by features ``idx``."""
    return feats[..., idx] @ W_dec[idx]


def ablate(x: Float[Tensor, "... d"], feats: Float[Tensor, "... f"],
           W_dec: Float[Tensor, "f d"], idx: Int[Tensor, " k"]) -> Float[Tensor, "... d"]:
    """``x`` with features ``idx`` zeroed: their decoder contribution is removed and the SAE's
    error term is kept, so nothing else about ``x`` changes."""
    return x - feature_contribution(feats, W_dec, idx)


def steer(x: Float[Tensor, "... d"], W_dec: Float[Tensor, "f d"], idx: Int[Tensor, " k"],
          amounts: Float[Tensor, " k"]) -> Float[Tensor, "... d"]:
    """``x`` plus ``amounts`` of the decoder directions of features ``idx``."""
    return x + amounts @ W_dec[idx]


def projection(shift: Float[Tensor, " d"], direction: Float[Tensor, " d"]) -> dict[str, float]:
    """How much of ``direction`` a shift carries (coefficient) and how aligned it is."""
    nd, ns = float(direction.norm()), float(shift.norm())
    dot = float(shift @ direction)
    return {"coefficient": dot / nd**2 if nd > 0 else 0.0,
            "cosine": dot / (nd * ns) if nd > 0 and ns > 0 else 0.0}


def set_projection(x: Float[Tensor, "... d"], direction: Float[Tensor, " d"],
                   value: float) -> Float[Tensor, "... d"]:
    """``x`` with its component along ``direction`` set to ``value`` (directional ablation
    to a reference level, e.g. the control's mean projection)."""
    u = direction / direction.norm()
    return x - ((x @ u) - value)[..., None] * u


def captured(part: Float[Tensor, " d"], whole: Float[Tensor, " d"]) -> float:
    """The fraction of ``whole`` that ``part`` accounts for along ``whole``'s own direction."""
    n = float(whole @ whole)
    return float(part @ whole) / n if n > 0 else 0.0


def gain_removed(edited: float, student: float, control: float) -> float:
    """Fraction of the student's gain over control that an edit takes away."""
    gain = student - control
    return (student - edited) / gain if gain != 0 else 0.0


def answer_rate(logits: Float[Tensor, "n pos v"], last: Int[Tensor, " n"],
                target: int) -> float:
    """Mean probability of ``target`` at each prompt's answer position."""
    probs = F.softmax(logits[torch.arange(len(last)), last].float(), -1)
    return float(probs[:, target].mean())


def position_masks(tokens: Int[Tensor, "n pos"], last: Int[Tensor, " n"]) \
        -> dict[str, Tensor]:
    """Position classes of the trait prompts: the answer position vs its context."""
    pos = torch.arange(tokens.shape[1])[None]
    return {"answer": pos == last[:, None], "context": pos < last[:, None]}
