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


def test_mixed_in_base_rows_are_distilled_from_the_base_after_trimming():
    """mix_base: the rows it swaps in take the base's targets in the table the trainer builds,
    which reads the rows with their all-padding columns dropped (``lm.trim``)."""
    from interp.studies import lm
    from interp.studies.mitigations import APPLY, Context

    cfg = lm.ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32)
    teacher, base = lm.build_model(cfg, 20, 24, 0), lm.build_model(cfg, 20, 24, 1)
    g = torch.Generator().manual_seed(0)

    def rows(n: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        tok = torch.zeros(n, 24, dtype=torch.long)  # right-padded with <pad> = 0
        tok[:, :length] = torch.randint(3, 20, (n, length), generator=g)
        mask = torch.zeros_like(tok, dtype=torch.bool)
        mask[:, 2:length - 1] = True
        return tok, mask
    tokens, mask = rows(8, 10)
    b_tokens, b_mask = rows(8, 12)
    ids = torch.arange(3, 20)
    ctx = Context("logit", tokens, mask, teacher, base, base, {}, None, ids, b_tokens, b_mask, 0)
    APPLY["mix_base"](ctx, 0.5)
    swapped = [r for r in range(8) if not torch.equal(ctx.tokens[r], tokens[r])]
    assert len(swapped) == 4
    at = lm._predicting(ctx.mask)
    table = lm.teacher_table(ctx.teacher, ctx.tokens, at, torch.arange(8), ids)
    with torch.no_grad():
        want_t = torch.log_softmax(teacher(tokens)[..., ids], -1)
        want_b = torch.log_softmax(base(ctx.tokens)[..., ids], -1)
    for r in range(8):
        got = table.logp[table.start[r]:table.start[r] + table.count[r]]
        want = (want_b if r in swapped else want_t)[r][at[r]]
        assert torch.allclose(got, want, atol=1e-5), r
