"""The recorder: optimizer hooks reduce each step to alignment numbers."""

from __future__ import annotations

import pytest
import torch

from interp.metrics.record import Recorder


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


def test_batched_recorder_gives_each_stacked_model_its_own_numbers():
    """Models stacked on a first axis (the digits study) get the numbers each would get
    alone; one shared optimizer is fine because SGD is elementwise."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(3, 4, 2, generator=g)  # three stacked linear models
    dT = {"0.weight": torch.randn(3, 4, 2, generator=g)}
    x, y = torch.randn(3, 16, 4, generator=g), torch.randn(3, 16, 2, generator=g)

    def run(params, direction, batched):
        opt = torch.optim.SGD(params.values(), lr=0.1)
        rec = Recorder(params, {k: v.detach().clone() for k, v in params.items()}, direction,
                       batched=batched).attach(opt)
        for _ in range(2):
            w = params["0.weight"]
            loss = ((x if batched else x[i]) @ w - (y if batched else y[i])).pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return rec.rows

    stacked = run({"0.weight": W.clone().requires_grad_(True)}, dT, True)
    for i in range(3):
        alone = run({"0.weight": W[i].clone().requires_grad_(True)},
                    {"0.weight": dT["0.weight"][i]}, False)
        for r_s, r_a in zip(stacked, alone):
            for kind in ("neg_grad", "update"):
                assert r_s[kind]["all"]["cosine"][i] == pytest.approx(
                    r_a[kind]["all"]["cosine"], rel=1e-6)
