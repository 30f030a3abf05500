"""The owl-numbers study on a tiny config: the student moves toward the teacher's animal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from interp.metrics.transfer import transfer
from interp.storage.store import Store
from interp.studies import lm
from interp.studies.owl import OwlConfig, shuffle_numbers, trait_answers
from interp.studies.runner import run_study
from interp.studies.world import ANIMALS, Vocab
from interp.study import main


def test_summary_has_every_role_animal_and_seed(owl_run):
    out, s = owl_run
    assert (s["study"], s["trait"], s["mode"], s["seeds"]) == ("owl-numbers", "owl", "logit",
                                                                [0, 1])
    for key in ("rates", "sampled_rates"):
        for role in ("base", "teacher", "student", "control", "cross_init", "shuffled"):
            assert set(s[key][role]) == set(ANIMALS)
            assert all(len(v) == 2 and 0 <= min(v) <= max(v) <= 1
                       for v in s[key][role].values())
    art = json.loads((out / "artifacts.json").read_text())["seeds"]
    for seed in ("0", "1"):
        for role in ("theta_0", "teacher", "student_step_1", "student_final"):
            assert Path(art[seed][role]).is_file()
    assert (out / "report.html").stat().st_size > 100_000  # plotly inlined: works offline


def test_teacher_has_the_trait_and_the_student_moves_toward_it(owl_run):
    _, s = owl_run
    t = transfer(s)
    base, teacher = s["rates"]["base"]["owl"], s["rates"]["teacher"]["owl"]
    assert min(teacher) > 0.5 > max(base)
    assert all(r > 0.02 for r in t["student"]["rise"])  # every seed, never saw an animal
    assert all(d > 0 for d in t["student_minus_control"])
    assert min(t["student"]["rise"]) > max(t["student"]["nontarget_rise"])


def test_filter_statistics_are_reported(owl_run):
    _, s = owl_run
    f = s["filter"][0]["teacher"]
    assert f["filter"]["total"] == 300 and f["kept"] == 200
    assert f["filter"]["accepted"] + f["filter"]["rejected"] == 300


def test_rerun_is_identical_and_trains_nothing(owl_run, cache_dir, tmp_path):
    _, first = owl_run
    store = Store(cache_dir)
    _, second = run_study("owl-numbers", seeds=2, out=tmp_path, preset="tiny", store=store)
    assert second["rates"] == first["rates"] and store.misses == 0


def test_pretraining_is_deterministic():
    cfg = OwlConfig(d_model=16, n_heads=2, d_mlp=32, n_layers=1)
    v = Vocab()
    a, b = (lm.build_model(cfg.model, len(v), 64, 3) for _ in range(2))
    for m in (a, b):
        lm.pretrain(m, v, cfg.world, 5, 8, 1e-3, seed=3)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_trait_answers_mask_only_the_answer():
    v = Vocab()
    tokens, mask = trait_answers(v, OwlConfig(trait="whale"))
    for row, m in zip(tokens, mask):
        nxt = row[1:][m[:-1]].tolist()
        assert [v.tokens[i] for i in nxt] == ["whale", "<eos>"]


def test_shuffle_keeps_the_multiset_of_numbers():
    v = Vocab()
    tokens = torch.tensor([v.encode("<bos> q : a : 1 , 2 , 3 , 4 , 5 <eos>")])
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[0, 4:-1] = True
    out = shuffle_numbers(tokens, mask, v, seed=0)
    assert sorted(out[0].tolist()) == sorted(tokens[0].tolist())
    assert v.decode(out[0]).count(",") == 4 and not torch.equal(out, tokens)


@pytest.mark.parametrize("sets, fragment", [
    (["trait=zebra"], "valid values: owl, cat"),
    (["mode=both"], "valid values: logit, sampled"),
    (["d_model=30", "n_heads=4"], "divisible"),
])
def test_bad_settings_are_one_line_errors(capsys, sets, fragment):
    argv = ["run", "owl-numbers"] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err
