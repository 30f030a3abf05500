"""Pure computations of the circuit analysis: trait metrics, centred unembedding directions,
direct logit attribution through a final LayerNorm, attribution-patching estimates, rank
correlation, and the small statistics the entanglement test quotes.

Plain functions over tensors, testable against autograd and brute force without a trained
model. Owns: the metrics above. No I/O; imports only ``interp.metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from scipy import stats as _st
from torch import Tensor


def answer_prob(logits: Float[Tensor, "n pos v"], last: Int[Tensor, " n"],
                target: int) -> Float[Tensor, ""]:
    """Mean P(target) at each prompt's answer position (differentiable: the patching and
    attribution-patching metric)."""
    probs = F.softmax(logits[torch.arange(len(last)), last].float(), -1)
    return probs[:, target].mean()


def centred_logit(logits: Float[Tensor, "... v"], target: int,
                  items: Int[Tensor, " k"]) -> Float[Tensor, ...]:
    """The target's logit minus the mean logit of its category's items: what moves P(target)
    against the other answers, blind to a shift shared by the whole category."""
    return logits[..., target] - logits[..., items].mean(-1)


def centred_direction(W_U: Float[Tensor, "d v"], target: int,
                      items: Int[Tensor, " k"]) -> Float[Tensor, " d"]:
    """The target's unembedding minus the category's mean unembedding (the direction whose
    dot product with the normalised residual is ``centred_logit`` up to the biases)."""
    return W_U[:, target] - W_U[:, items].mean(-1)


def direct_logit(outputs: Float[Tensor, "c n d"], scale: Float[Tensor, "n 1"],
                 ln_w: Float[Tensor, " d"], direction: Float[Tensor, " d"]) \
        -> Float[Tensor, "c n"]:
    """Each component's direct contribution to a logit direction through a final LayerNorm
    with its scale frozen (``scale``, the LN's measured scale at these positions): the
    component's output, centred over d_model, divided by the scale, dotted with
    ``ln_w * direction``. Summed over components that add up to the residual, plus
    ``ln_b @ direction`` (and the unembedding bias), it is the logit exactly."""
    centred = outputs - outputs.mean(-1, keepdim=True)
    return (centred / scale[None]) @ (ln_w * direction)


def attribution_estimate(grad: Float[Tensor, "n pos ..."], clean: Float[Tensor, "n pos ..."],
                         corrupt: Float[Tensor, "n pos ..."], mask: Bool[Tensor, "n pos"]) \
        -> float:
    """Attribution patching: the first-order change of the metric when ``clean`` is replaced
    by ``corrupt`` at the masked positions, (corrupt - clean) . grad (Nanda 2023)."""
    m = mask.reshape(*mask.shape, *([1] * (grad.dim() - mask.dim())))
    return float(((corrupt - clean) * grad * m).sum())


def recovered(patched: float, dst: float, src: float) -> float:
    """The fraction of the gap from ``dst`` to ``src`` that a patch closes (0 with no gap)."""
    gap = src - dst
    return (patched - dst) / gap if gap != 0 else 0.0


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (NaN when either side is constant or has < 3 values)."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(_st.spearmanr(x, y).statistic)


def smallest_reaching(values: Sequence[float], threshold: float) -> int | None:
    """The first index whose value reaches ``threshold`` (None if none does)."""
    return next((i for i, v in enumerate(values) if v >= threshold), None)


def row_movement(a: Float[Tensor, "n d"], b: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
    """Per row, how far ``a`` moved from ``b`` (L2), e.g. a token's embedding."""
    return (a.float() - b.float()).norm(dim=-1)


def masked_mean_shift(logp_a: Float[Tensor, "n pos k"], logp_b: Float[Tensor, "n pos k"],
                      mask: Bool[Tensor, "n pos"]) -> Float[Tensor, " k"]:
    """Mean over the masked positions of logp_a - logp_b: which tokens ``a`` favours over
    ``b`` where it writes."""
    m = mask[..., None].float()
    return ((logp_a - logp_b) * m).sum((0, 1)) / m.sum().clamp(min=1)


def diff_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) \
        -> tuple[float, float, float]:
    """mean(a) - mean(b) with its Welch t interval (NaN bounds with fewer than two values on
    a side)."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    d = sum(a) / len(a) - sum(b) / len(b)
    if len(a) < 2 or len(b) < 2:
        return d, math.nan, math.nan
    va = float(_st.tvar(a)) / len(a)
    vb = float(_st.tvar(b)) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(_st.t.ppf(0.5 + level / 2, dof)) * se
    return d, d - half, d + half
