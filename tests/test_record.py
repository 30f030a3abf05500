"""The recorder: optimizer hooks reduce each step to alignment numbers."""

from __future__ import annotations

import pytest
import torch

from interp.record import Recorder


def test_recorder_sees_gradient_and_update_without_touching_the_loop():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    theta0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    dT = {k: torch.randn_like(v) for k, v in theta0.items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, theta0, dT, checkpoint_every=2).attach(opt)
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    for _ in range(3):  # a plain loop: the recorder only hooks the optimizer
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        loss = (model(x) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert [r["step"] for r in rec.rows] == [1, 2, 3]
    assert "cumulative" in rec.rows[0] and "cumulative" in rec.rows[1]
    assert "cumulative" not in rec.rows[2]
    last = rec.rows[-1]
    # plain SGD: the update is -lr * grad, so the two cosines agree
    assert last["update"]["all"]["cosine"] == pytest.approx(last["neg_grad"]["all"]["cosine"],
                                                            rel=1e-5)
    ip = sum(float(((p.detach() - before[k]).double() * dT[k].double()).sum())
             for k, p in model.named_parameters())
    assert last["update"]["all"]["inner_product"] == pytest.approx(ip, rel=1e-6)
    assert set(last["update"]) == {"all", "linear0", "linear2"}
