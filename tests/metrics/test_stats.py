"""The CI helpers against scipy, and what they print when there is no interval to give."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from interp.metrics.stats import fmt_ci, mean_ci


@pytest.mark.parametrize("n", [2, 3, 7, 30])
def test_mean_ci_is_scipys_t_interval(n):
    xs = np.random.default_rng(n).normal(0.3, 0.2, n)
    lo, hi = st.t.interval(0.95, n - 1, loc=xs.mean(), scale=st.sem(xs))
    m, got_lo, got_hi = mean_ci(xs.tolist())
    assert m == pytest.approx(xs.mean(), rel=1e-12)
    assert (got_lo, got_hi) == pytest.approx((lo, hi), rel=1e-9)
    lo90, hi90 = st.t.interval(0.9, n - 1, loc=xs.mean(), scale=st.sem(xs))
    assert mean_ci(xs.tolist(), level=0.9)[1:] == pytest.approx((lo90, hi90), rel=1e-9)


def test_fmt_ci_prints_the_interval_in_percent_or_plain():
    xs = [0.1, 0.2, 0.3]
    lo, hi = st.t.interval(0.95, 2, loc=0.2, scale=st.sem(xs))
    assert fmt_ci(xs) == f"20.0% [{lo * 100:.1f}, {hi * 100:.1f}]"
    assert fmt_ci(xs, pct=False, digits=3) == f"0.200 [{lo:.3f}, {hi:.3f}]"


def test_one_value_has_no_interval_and_none_is_not_a_zero():
    m, lo, hi = mean_ci([0.25])
    assert m == 0.25 and math.isnan(lo) and math.isnan(hi)
    assert fmt_ci([0.25]) == "25.0% (n=1, no CI)"
    assert "[" not in fmt_ci([0.25], pct=False)
    assert fmt_ci([]) == "n/a"
    with pytest.raises(ValueError):
        mean_ci([])


def test_a_report_without_a_control_does_not_print_a_zero_gap(tmp_path):
    """An owl report on a run with no control says so instead of "0.00 points [0.00, 0.00]";
    with one seed it prints no interval."""
    from interp.reports.owl import write_report

    items = {"owl": [0.1], "cat": [0.1]}
    summary = {"study": "owl-numbers", "trait": "owl", "mode": "logit", "seeds": [0],
               "rates": {"base": items, "student": {"owl": [0.3], "cat": [0.05]}},
               "sampled_rates": {"base": items, "student": {"owl": [0.3], "cat": [0.05]}}}
    write_report(tmp_path, summary)
    text = (tmp_path / "report.html").read_text()
    assert "no control" in text.lower() and "0.00 points" not in text and "[0.00, 0.00]" not in text
    assert "n=1, no CI" in text
