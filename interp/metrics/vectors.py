"""Inner products, norms and cosines of flat tensors, in float64.

Owns the arithmetic every alignment, drift and feature metric shares. Pure functions;
imports nothing from interp.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor


def inner(u: Float[Tensor, ...], v: Float[Tensor, ...]) -> float:
    """Sum of u * v over every element, in float64."""
    return float((u.double() * v.double()).sum())


def norm(u: Float[Tensor, ...]) -> float:
    return float(u.double().pow(2).sum().sqrt())


def ratio(num: float, den: float) -> float:
    """num / den, or 0 when den is 0 (a zero vector has no direction)."""
    return num / den if den > 0 else 0.0


def cosine(u: Float[Tensor, ...], v: Float[Tensor, ...]) -> float:
    """Cosine of the flattened tensors; 0 when either is zero."""
    return ratio(inner(u, v), norm(u) * norm(v))
