"""Small statistics over seeds: means with 95% confidence intervals (Student's t).

Owns: ``mean_ci``, ``fmt_ci``. No I/O; imports nothing from interp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats as _st


def mean_ci(xs: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high); with one value the interval is that value."""
    xs = [float(x) for x in xs]
    n = len(xs)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    m = sum(xs) / n
    if n == 1:
        return m, m, m
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    half = _st.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return m, m - half, m + half


def fmt_ci(xs: Sequence[float], pct: bool = True, digits: int = 1) -> str:
    m, lo, hi = mean_ci(xs)
    k = 100 if pct else 1
    unit = "%" if pct else ""
    return f"{m * k:.{digits}f}{unit} [{lo * k:.{digits}f}, {hi * k:.{digits}f}]"
