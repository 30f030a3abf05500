"""Alignment metrics on small modules: the theorem's sign, the GN form, per-token attribution."""

from __future__ import annotations

import math

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


def test_softmax_quadratic_is_the_softmax_covariance_form():
    """t^T (diag(p) - p p^T) t with the matrix built explicitly, and the Hessian of the KL
    at equality from autograd (the form the theorem's bracket is)."""
    g = torch.Generator().manual_seed(0)
    logits, t = torch.randn(50, 7, generator=g).double(), torch.randn(50, 7, generator=g).double()
    q = A.softmax_quadratic(logits, t)
    p = F.softmax(logits, -1)
    M = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    torch.testing.assert_close(q, torch.einsum("ni,nij,nj->n", t, M, t))
    torch.testing.assert_close(q, A.softmax_quadratic(logits, t + 3.0))  # constant shift: 0 change
    # second derivative of KL(p || softmax(z + e t)) in e at e = 0
    logp = F.log_softmax(logits[0], -1)

    def kl(e):
        return (logp.exp() * (logp - F.log_softmax(logits[0] + e * t[0], -1))).sum()
    hess = torch.autograd.functional.hessian(kl, torch.tensor(0.0, dtype=torch.float64))
    assert float(hess) == pytest.approx(float(q[0]), rel=1e-8)


def test_delta_skips_the_ignore_buffer_so_first_step_is_finite():
    """A TransformerLens state dict holds ``IGNORE`` (-inf) buffers; dT over the full state
    dict must leave them out (else first_step is NaN), and a diverged weight is an error."""
    from interp.studies import lm

    cfg = lm.ModelConfig(1, 16, 2, 32)
    sd0 = lm.build_model(cfg, 20, 8, 0).state_dict()
    sd1 = lm.build_model(cfg, 20, 8, 1).state_dict()
    assert any(not torch.isfinite(v).all() for v in sd0.values() if v.is_floating_point())
    d = A.delta(sd1, sd0)
    assert all(torch.isfinite(v).all() for v in d.values())
    assert not any("IGNORE" in k for k in d) and "embed.W_E" in d
    half = {k: (sd0[k] + sd1[k]) / 2 if k in d else sd0[k] for k in sd0}
    fs = A.first_step(sd0, sd1, half)
    assert math.isfinite(fs["inner_product"]) and fs["cosine"] == pytest.approx(1.0, abs=1e-5)
    broken = dict(sd1)
    broken["embed.W_E"] = sd1["embed.W_E"].clone()
    broken["embed.W_E"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="embed.W_E"):
        A.delta(broken, sd0)


def test_by_component_and_cumulative_split_over_several_components():
    """Per-component numbers are each component's own inner product and cosine, and the
    cumulative curve follows a student moving along dT in one component only."""
    theta0 = {"0.weight": torch.zeros(2, 2), "0.bias": torch.zeros(2),
              "2.weight": torch.zeros(3), "embed.W_E": torch.zeros(2)}
    dT = {"0.weight": torch.tensor([[1.0, 0.0], [0.0, 0.0]]), "0.bias": torch.tensor([0.0, 1.0]),
          "2.weight": torch.tensor([1.0, 1.0, 0.0]), "embed.W_E": torch.tensor([3.0, 4.0])}
    teacher = {k: theta0[k] + dT[k] for k in theta0}
    u = {"0.weight": torch.tensor([[2.0, 0.0], [0.0, 0.0]]), "0.bias": torch.tensor([0.0, 0.0]),
         "2.weight": torch.tensor([1.0, -1.0, 0.0]), "embed.W_E": torch.tensor([-3.0, -4.0])}
    comps = A.by_component(u, dT)
    assert set(comps) == {"linear0", "linear2", "embed"}
    assert comps["linear0"]["inner_product"] == pytest.approx(2.0)
    assert comps["linear0"]["cosine"] == pytest.approx(2.0 / (2.0 * 2 ** 0.5))
    assert comps["linear2"]["inner_product"] == pytest.approx(0.0)
    assert comps["embed"]["cosine"] == pytest.approx(-1.0)
    # a student that moves along dT in linear0 only, further at each checkpoint
    ckpts = {s: {k: theta0[k] + (s * dT[k] if k.startswith("0.") else 0 * dT[k])
                 for k in theta0} for s in (1, 5)}
    ckpts[9] = teacher
    cum = A.cumulative(theta0, teacher, ckpts)
    assert list(cum) == [1, 5, 9]
    norm_all = sum(float((v ** 2).sum()) for v in dT.values()) ** 0.5
    norm_0 = (float((dT["0.weight"] ** 2).sum()) + float((dT["0.bias"] ** 2).sum())) ** 0.5
    assert cum[1]["cosine"] == pytest.approx(norm_0 / norm_all)
    assert cum[5]["cosine"] == pytest.approx(norm_0 / norm_all)
    assert cum[1]["components"]["linear0"] == pytest.approx(1.0)
    assert cum[1]["components"]["embed"] == 0.0  # no movement there: cosine 0, not NaN
    assert cum[9]["cosine"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in cum[9]["components"].values())
