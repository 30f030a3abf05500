"""Alignment metrics on small modules: the theorem's sign, the GN form, per-token attribution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from interp.metrics import alignment as A


def _mlp(seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 6))


def _params(m: torch.nn.Module) -> A.State:
    return {k: v.detach().clone() for k, v in m.named_parameters()}


def test_components_follow_transformer_lens_and_sequential_names():
    assert A.component("blocks.3.attn.W_Q") == "blocks.3.attn"
    assert A.component("blocks.0.mlp.W_in") == "blocks.0.mlp"
    assert A.component("blocks.1.ln2.w") == "layer_norms"
    assert A.component("embed.W_E") == "embed" and A.component("unembed.b_U") == "unembed"
    assert A.component("4.weight") == "linear4"


def test_dot_cos_and_first_step():
    a = {"w": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0])}
    b = {"w": torch.tensor([1.0, 1.0]), "b": torch.tensor([0.0])}
    ip, cos = A.dot_cos(a, b)
    assert ip == pytest.approx(1.0) and cos == pytest.approx(2 ** -0.5)
    zero = {k: torch.zeros_like(v) for k, v in a.items()}
    fs = A.first_step(zero, b, a)
    assert fs["inner_product"] == pytest.approx(1.0) and set(fs["components"]) == {"other"}


@pytest.mark.parametrize("seed", range(5))
def test_one_small_gradient_step_moves_toward_a_same_init_teacher(seed):
    """The theorem: teacher = theta_0 + eps * dT; a small imitation step has dS . dT >= 0,
    and -grad . dT matches eps * the Gauss-Newton form to first order."""
    m = _mlp(seed)
    theta0 = _params(m)
    g = torch.Generator().manual_seed(seed)
    direction = {k: torch.randn(v.shape, generator=g) for k, v in theta0.items()}
    eps = 1e-3
    teacher = {k: theta0[k] + eps * direction[k] for k in theta0}
    x = torch.randn(256, 8, generator=g)
    fn = A.model_fn(m)
    t = F.log_softmax(fn(teacher, x), -1).detach()

    def loss(p):
        return (t.exp() * (t - F.log_softmax(fn(p, x), -1))).sum(-1).sum()

    grad = A.gradient(loss, theta0)
    step = {k: theta0[k] - 0.1 * grad[k] for k in theta0}
    fs = A.first_step(theta0, teacher, step)
    assert fs["inner_product"] >= 0
    ip, _ = A.dot_cos({k: -v for k, v in grad.items()}, A.delta(teacher, theta0))
    gn = float(A.gauss_newton_form(fn, theta0, direction, x))
    assert ip == pytest.approx(eps ** 2 * gn, rel=0.02)


def test_token_attribution_matches_per_example_autograd():
    m = _mlp(0)
    theta0 = _params(m)
    g = torch.Generator().manual_seed(1)
    direction = {k: torch.randn(v.shape, generator=g) for k, v in theta0.items()}
    x = torch.randn(16, 8, generator=g)
    y = torch.randint(6, (16,), generator=g)
    fn = A.model_fn(m)

    def losses(p):
        return F.cross_entropy(fn(p, x), y, reduction="none")

    fast = A.token_attribution(losses, theta0, direction)
    slow = torch.stack([sum((gi * direction[k]).sum() for k, gi in
                            A.gradient(lambda p, i=i: losses(p)[i], theta0).items())
                        for i in range(16)])
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-6)


def test_softmax_quadratic_is_nonnegative_and_shift_invariant():
    g = torch.Generator().manual_seed(0)
    logits, t = torch.randn(50, 7, generator=g), torch.randn(50, 7, generator=g)
    q = A.softmax_quadratic(logits, t)
    assert (q >= -1e-6).all()
    torch.testing.assert_close(q, A.softmax_quadratic(logits, t + 3.0))  # constant shift: 0 change
