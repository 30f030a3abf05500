"""Mitigations as owl-numbers settings: parsing, the pieces they are made of, and one real
tiny run (threshold sampling + gradient projection) measured against the unmitigated one."""

from __future__ import annotations

import json

import pytest
import torch

from interp.errors import ConfigError, UsageError
from interp.metrics import risk as R
from interp.storage.store import Store, read_tensors
from interp.studies.mitigations import parse
from interp.studies.runner import run_study


def test_parse_orders_and_checks():
    assert parse("none") == []
    assert parse("project+mix_base") == [("mix_base", 0.25), ("project", 0.0)]
    assert parse("kl_base:4+threshold:0.1") == [("threshold", 0.1), ("kl_base", 4.0)]
    for bad, msg in [("paraphrase", "valid: none or mix_base"), ("mix_base:1.5", r"\(0, 1\]"),
                     ("project:1", "takes no value"), ("mask_div:x", "expects a number"),
                     ("project+project", "twice")]:
        with pytest.raises(ConfigError, match=msg):
            parse(bad)
    with pytest.raises(ConfigError, match="needs mode logit"):
        parse("threshold", mode="sampled")


def test_drop_top_and_cka():
    score = torch.tensor([[5.0, 1.0, 9.0, 3.0], [7.0, 2.0, 0.0, 8.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, True]])
    kept = R.drop_top(score, mask, 0.4)  # 2 of 6 masked positions: the 9 and the 8
    assert kept.tolist() == [[True, True, False, False], [True, True, False, False]]
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(1)))
    assert R.linear_cka(x, 3 * x @ q) == pytest.approx(1.0)
    assert R.linear_cka(x, torch.randn(200, 8, generator=torch.Generator().manual_seed(2))) < 0.2


def test_setting_validates(tmp_path):
    with pytest.raises(UsageError, match="unknown mitigation"):
        run_study("owl-numbers", seeds=1, seed_start=0, out=tmp_path, preset="tiny",
                  sets=["mitigation=paraphrase"], store=Store(tmp_path / "c"))


def test_threshold_and_projection_on_a_tiny_run(owl_run, cache_dir, tmp_path):
    """Threshold sampling + projection: the student's displacement has no component along
    theta_T - theta_0, and its rise is below a third of the unmitigated student's."""
    plain = owl_run[1]
    out = tmp_path / "mitigated"
    s = run_study("owl-numbers", seeds=1, seed_start=0, out=out, preset="tiny",
                  sets=["roles=student", "mitigation=threshold:0.05+project"],
                  store=Store(cache_dir))[1]
    rise = lambda r: r["student"]["owl"][0] - r["base"]["owl"][0]  # noqa: E731
    assert rise(plain["rates"]) > 0.1
    assert rise(s["rates"]) < rise(plain["rates"]) / 3
    art = json.loads((out / "artifacts.json").read_text())["seeds"]["0"]
    theta0, teacher = read_tensors(art["theta_0"]), read_tensors(art["teacher"])
    student = read_tensors(art["student_final"])
    names = [k for k in student if k in theta0 and torch.isfinite(theta0[k]).all()
             and not k.endswith(("IGNORE", "mask"))]
    dot = sum(float(((student[k] - theta0[k]).double() * (teacher[k] - theta0[k]).double()).sum())
              for k in names)
    n_s = sum(float((student[k] - theta0[k]).double().pow(2).sum()) for k in names) ** 0.5
    n_t = sum(float((teacher[k] - theta0[k]).double().pow(2).sum()) for k in names) ** 0.5
    assert abs(dot) / (n_s * n_t) < 1e-4
