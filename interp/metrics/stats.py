"""Small statistics over replicates: means with 95% confidence intervals (Student's t).

Owns: ``mean_ci``, ``fmt_ci``. An interval needs at least two values: with one the bounds
are NaN and ``fmt_ci`` says "n=1, no CI" rather than print a zero-width interval; with none
``fmt_ci`` prints "n/a" (a report without that control). Imports nothing from interp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats as _st


def mean_ci(xs: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the t interval; with one value the bounds are NaN (no interval)."""
    xs = [float(x) for x in xs]
    n = len(xs)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    m = sum(xs) / n
    if n == 1:
        return m, math.nan, math.nan
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    half = _st.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return m, m - half, m + half


def fmt_ci(xs: Sequence[float], pct: bool = True, digits: int = 1) -> str:
    """"12.3% [4.5, 20.1]"; "12.3% (n=1, no CI)" for one value; "n/a" for none."""
    if len(xs) == 0:
        return "n/a"
    m, lo, hi = mean_ci(xs)
    k = 100 if pct else 1
    unit = "%" if pct else ""
    if len(xs) == 1:
        return f"{m * k:.{digits}f}{unit} (n=1, no CI)"
    return f"{m * k:.{digits}f}{unit} [{lo * k:.{digits}f}, {hi * k:.{digits}f}]"
