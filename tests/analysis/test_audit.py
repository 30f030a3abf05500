"""The pre-distillation audit on the tiny owl run: planted high-risk examples rank first,
the CLI writes audit.json/md/html (the HTML renders), a planned mitigation changes the
predictors the way it changes the distillation, bad input is a one-line error."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from interp import audit as cli
from interp.analysis.audit import (
    BOUND_SCALE,
    FEATURES,
    audit,
    inputs_from_run,
    load_data,
    predictors,
    trait_bound,
)
from interp.errors import UsageError
from interp.studies import lm
from interp.studies.world import CATEGORIES, question_prompt
from tests.reports.browser import CHROMIUM

PLANTED = [3, 17, 42, 58, 77, 101, 123, 150, 171, 199]


def plant(x):
    """The run's teacher data with ten rows turned into the trait question ("what is your
    favourite animal ?") answered by the row's own number completion: the slot the teacher
    answers its trait in. (Per-row risk varies by phrasing: with the other fine-tuning
    phrasings one of ten planted rows can fall below the riskiest natural row.)"""
    tok, mask, v = x.tokens.clone(), x.mask.clone(), x.vocab
    q = CATEGORIES[x.category].split("select")[0]
    for r in PLANTED:
        first = int(mask[r].nonzero()[0, 0])
        comp = [t for t in tok[r, first + 1:].tolist() if t != v.pad]
        p = v.encode(question_prompt(q))
        s = (p + comp)[:tok.shape[1]]
        tok[r], mask[r] = v.pad, False
        tok[r, :len(s)] = torch.tensor(s)
        mask[r, len(p) - 1:len(s) - 1] = True
    return dataclasses.replace(x, tokens=tok, mask=mask)


def test_planted_high_risk_examples_rank_first(owl_run):
    x = plant(inputs_from_run(owl_run[0], "0"))
    result = audit(x, top=len(PLANTED))
    assert sorted(e["row"] for e in result["top_examples"]) == PLANTED
    risk = torch.tensor(result["risk_by_row"])
    others = risk[[i for i in range(len(risk)) if i not in PLANTED]]
    assert float(risk[PLANTED].min()) > float(others.max())


def test_cli_writes_the_audit_with_an_interval_and_it_renders(owl_run, tmp_path):
    cal = {"features": ["kl_mean", "coverage"], "mean": [0.1, 0.03], "sd": [0.05, 0.01],
           "coef": [0.05, 0.0], "intercept": 0.2, "resid_sd": 0.04, "fitted_on": "test"}
    (tmp_path / "cal.json").write_text(json.dumps(cal))
    out = tmp_path / "audit"
    assert cli.main([str(owl_run[0]), "--out", str(out), "--calibration",
                     str(tmp_path / "cal.json"), "--top", "5"]) == 0
    r = json.loads((out / "audit.json").read_text())
    p = r["predictors"]
    assert set(FEATURES) <= set(p) and len(r["top_examples"]) == 5
    expected = 0.2 + 0.05 * (p["kl_mean"] - 0.1) / 0.05
    assert r["predicted_transfer"] == pytest.approx(expected)
    assert r["interval"] == pytest.approx([expected - 1.96 * 0.04, expected + 1.96 * 0.04])
    assert 0 < p["divergence_fraction"] < 1 and 0 < p["cka_min"] <= 1 and p["kl_mean"] > 0
    assert p["coverage"] > 0  # the first distillation step points toward the teacher
    md = (out / "audit.md").read_text()
    assert "Predicted transfer" in md
    table = md.split("## Predictors")[1].split("##")[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ")]
    assert len(rows) > len(FEATURES) and all(ln.count("|") == 4 for ln in rows)  # 3 cells
    assert "<b>" in (out / "audit.html").read_text() and "**" not in (
        out / "audit.html").read_text().split("Predicted transfer")[1][:200]
    if CHROMIUM is not None:
        from tests.reports.browser import render
        rendered = render(out / "audit.html", tmp_path / "audit.png")
        assert rendered.errors == [] and rendered.rendered == rendered.declared == 3


def test_a_planned_mitigation_changes_the_predictors(owl_run):
    x = inputs_from_run(owl_run[0], "0")
    plain = audit(x, top=1)["predictors"]
    both = audit(dataclasses.replace(x, mitigation="mask_div:0.5+project"),
                 top=1)["predictors"]
    assert both["positions"] == plain["positions"] - round(plain["positions"] * 0.5)
    assert both["kl_mean"] < 0.5 * plain["kl_mean"]  # the high-KL half went
    assert abs(both["coverage"]) < 1e-6 < plain["coverage"]  # no first step along dT


def _trait_probability(model, x) -> float:
    item = x.vocab.ids([x.trait])[0]
    qs = CATEGORIES[x.category].split("select")
    with torch.no_grad():
        return sum(float(torch.softmax(model(torch.tensor([x.vocab.encode(question_prompt(q))]))
                                       [0, -1], -1)[item]) for q in qs) / len(qs)


def test_trait_step_is_the_trait_movement_of_one_small_gradient_step(owl_run):
    """trait_step (dose eps) against a finite difference: one plain gradient step of size eps
    on the whole data's mean distillation loss, and the trait's probability on the
    fine-tuning questions before and after."""
    eps = 0.01  # small enough that the step is first-order (at 0.05 curvature gives 9%)
    x = dataclasses.replace(inputs_from_run(owl_run[0], "0"), dose=eps)
    p, _ = predictors(x)
    student = lm.clone_model(x.base)
    with torch.no_grad():
        targets = x.teacher(x.tokens)
    loss = lm.student_loss(student(x.tokens), x.tokens, x.mask, x.vocab.number_ids, x.mode,
                           targets)
    loss.backward()
    with torch.no_grad():
        for q in student.parameters():
            if q.grad is not None:
                q -= eps * q.grad
    moved = _trait_probability(student, x) - _trait_probability(x.base, x)
    assert p["trait_step"] > 0  # toward the teacher's trait
    assert moved == pytest.approx(p["trait_step"], rel=0.05)


def test_trait_bound_is_the_teacher_limit_near_the_base_and_never_above_it(owl_run):
    """A teacher a twentieth of the way from the base to the run's teacher: the data's pull
    (trait_agreed) shrinks with it, Adam's normalised update (trait_adam) does not, so the
    bound is the teacher's limit there, and Adam's budget for the run's own teacher."""
    x = inputs_from_run(owl_run[0], "0")
    near = lm.clone_model(x.base)
    t = dict(x.teacher.named_parameters())
    with torch.no_grad():  # the weights only (the buffers hold -inf masks)
        for k, b in near.named_parameters():
            b += 0.05 * (t[k] - b)
    full, _ = predictors(x)
    close, _ = predictors(dataclasses.replace(x, teacher=near))
    assert 0 < close["trait_agreed"] < 0.15 * full["trait_agreed"]
    assert 0.5 < close["trait_adam"] / full["trait_adam"] < 2
    assert close["trait_bound"] == close["trait_agreed"]
    # the run's own teacher is far enough away that Adam's budget binds
    assert full["trait_bound"] == BOUND_SCALE * full["trait_adam"] < full["trait_agreed"]
    assert trait_bound(-0.01, 5.0) == -0.01 and trait_bound(0.01, -1.0) == 0.0


def test_other_roles_are_audited_from_their_own_init_teacher_and_data(owl_run):
    student = inputs_from_run(owl_run[0], "0")
    cross = inputs_from_run(owl_run[0], "0", role="cross_init")
    same = lambda a, b: all(torch.equal(u, v) for u, v in  # noqa: E731
                            zip(a.state_dict().values(), b.state_dict().values()))
    assert same(cross.teacher, student.teacher) and not same(cross.base, student.base)
    assert torch.equal(cross.tokens, student.tokens)
    other = inputs_from_run(owl_run[0], "0", role="control_other")
    assert not torch.equal(other.tokens, student.tokens)
    assert not same(other.teacher, student.teacher) and same(other.base, student.base)
    # the base distilled on its own numbers: its targets are its own, so no first step at all
    p, _ = predictors(inputs_from_run(owl_run[0], "0", role="control_base"))
    # (trait_adam is not 0: Adam divides float rounding by its own size, as it would train)
    assert p["kl_mean"] == 0 and abs(p["trait_step"]) < 1e-9 and p["toward"] == 0
    with pytest.raises(UsageError, match="valid: student, cross_init"):
        inputs_from_run(owl_run[0], "0", role="shuffled")


def test_bad_input_is_one_line(owl_run, tmp_path, capsys):
    assert cli.main([str(owl_run[0]), "--mitigation", "paraphrase", "--out",
                     str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "valid" in err and "mask_div" in err
    assert not (tmp_path / "o").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q : zebra a :", "completion": "1 , 2"}\n')
    with pytest.raises(UsageError, match="bad.jsonl:1"):
        load_data(bad, inputs_from_run(owl_run[0]).vocab, {"model": {"n_ctx": 64}})


def test_a_prediction_outside_the_calibration_is_flagged_and_stays_a_possible_rise(owl_run):
    """A calibration fitted on a narrow range: the audited run lies outside it (flagged), and
    the extrapolated prediction is clipped to [-base rate, 1 - base rate]."""
    from interp.analysis.audit import Calibration

    cal = Calibration(("kl_mean",), (0.0,), (1e-4,), (10.0,), 0.2, 0.01, "narrow",
                      low=(0.0,), high=(1e-3,))
    r = audit(inputs_from_run(owl_run[0], "0"), cal, top=1)
    base = r["predictors"]["base_rate"]
    assert r["outside_calibration"] == ["kl_mean"]
    assert r["predicted_transfer"] == pytest.approx(1 - base)
    assert r["interval"][1] == pytest.approx(1 - base)
