"""The circuit metrics against autograd and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from interp.metrics import circuits as C


def test_direct_logit_attribution_sums_to_the_centred_logit_through_a_layernorm():
    g = torch.Generator().manual_seed(0)
    c, n, d, v = 5, 7, 16, 11
    outs = torch.randn(c, n, d, generator=g, dtype=torch.float64)
    w, b = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g,
                                                                         dtype=torch.float64)
    W_U, b_U = torch.randn(d, v, generator=g, dtype=torch.float64), torch.randn(
        v, generator=g, dtype=torch.float64)
    items, target = torch.tensor([1, 3, 4, 8]), 3
    x = outs.sum(0)
    logits = F.layer_norm(x, (d,), w, b, eps=1e-5) @ W_U + b_U
    scale = (x.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
    u = C.centred_direction(W_U, target, items)
    direct = C.direct_logit(outs, scale, w, u)  # [c, n]
    const = b @ u + b_U[target] - b_U[items].mean()
    assert torch.allclose(direct.sum(0) + const, C.centred_logit(logits, target, items),
                          atol=1e-10)


def test_attribution_estimate_is_exact_for_a_linear_metric_and_first_order_otherwise():
    g = torch.Generator().manual_seed(1)
    clean = torch.randn(3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    corrupt = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(3, 4, generator=g) > 0.5
    a = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)

    def patched(x, alpha=1.0):
        return torch.where(mask[..., None], x + alpha * (corrupt - x), x)
    linear = (clean * a).sum()
    (grad,) = torch.autograd.grad(linear, clean)
    est = C.attribution_estimate(grad, clean.detach(), corrupt, mask)
    want = float((patched(clean.detach()) * a).sum() - linear.detach())
    assert est == pytest.approx(want, rel=1e-10)

    def f(x):
        return torch.tanh(x).pow(2).sum()
    (grad,) = torch.autograd.grad(f(clean), clean)
    est = C.attribution_estimate(grad, clean.detach(), corrupt, mask)
    alpha = 1e-5
    fd = float(f(patched(clean.detach(), alpha)) - f(clean.detach())) / alpha
    assert est == pytest.approx(fd, rel=1e-3)
    # per head: a mask over [n, pos] broadcasts over trailing dims
    assert C.attribution_estimate(grad[:, :, None], clean.detach()[:, :, None],
                                  corrupt[:, :, None], mask) == pytest.approx(est)


def test_spearman_matches_scipy_and_is_nan_without_variation():
    x, y = [0.1, 0.5, 0.2, 0.9, 0.3], [1.0, 3.0, 2.5, 4.0, 0.5]
    assert C.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert math.isnan(C.spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(C.spearman([1, 2], [1, 2]))


def test_diff_ci_is_welchs_interval():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 12).tolist(), rng.normal(0.0, 2.0, 20).tolist()
    d, lo, hi = C.diff_ci(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval()
    assert d == pytest.approx(np.mean(a) - np.mean(b))
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    assert math.isnan(C.diff_ci([1.0], [1.0, 2.0])[1])


def test_masked_mean_shift_and_row_movement_by_brute_force():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    rows = [(a[i, j] - b[i, j]) for i in range(2) for j in range(3) if mask[i, j]]
    assert torch.allclose(C.masked_mean_shift(a, b, mask), torch.stack(rows).mean(0))
    assert torch.allclose(C.row_movement(a[0], b[0]),
                          torch.tensor([float((a[0, j] - b[0, j]).norm()) for j in range(3)]))


def test_recovered_and_smallest_reaching():
    assert C.recovered(0.5, 0.0, 2.0) == 0.25
    assert C.recovered(0.5, 1.0, 1.0) == 0.0
    assert C.smallest_reaching([0.1, 0.85, 0.9], 0.8) == 1
    assert C.smallest_reaching([0.1, 0.2], 0.8) is None


def test_answer_prob_reads_each_prompts_answer_position():
    logits = torch.zeros(2, 3, 4)
    logits[0, 1, 2] = 10.0  # prompt 0 answers at position 1
    logits[1, 2, 2] = -10.0
    p = float(C.answer_prob(logits, torch.tensor([1, 2]), 2))
    e = math.exp(10)
    assert p == pytest.approx((e / (e + 3) + math.exp(-10) / (math.exp(-10) + 3)) / 2)
