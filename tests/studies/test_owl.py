"""The owl-numbers study on a tiny config: the student moves toward the teacher's animal,
every control carries signal, the headline is on held-out questions, and the store's keys
follow the code."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from interp.metrics.transfer import transfer
from interp.storage import store as store_mod
from interp.storage.store import Store, read_tensors
from interp.studies import lm, owl
from interp.studies.owl import (
    OwlConfig,
    drop_first,
    probe_tokens,
    shuffle_numbers,
    trait_answers,
)
from interp.studies.runner import run_study
from interp.studies.world import ANIMALS, CATEGORIES, Vocab, number_document, vocab_for
from interp.study import main


class BuildLog(Store):
    """A store that lists the kind of every entry it builds."""

    def __init__(self, root):
        super().__init__(root)
        self.built: list[str] = []

    def put(self, kind, *args, **kwargs):
        self.built.append(kind)
        return super().put(kind, *args, **kwargs)


STUDENT_ROLES = ("student", "control_other", "control_base", "cross_init", "shuffled")


def test_summary_has_every_role_animal_and_seed(owl_run):
    out, s = owl_run
    assert (s["study"], s["trait"], s["mode"], s["seeds"]) == ("owl-numbers", "owl", "logit",
                                                                [0, 1])
    for key in ("rates", "sampled_rates"):
        for role in ("base", "teacher", "teacher_other") + STUDENT_ROLES:
            assert set(s[key][role]) == set(ANIMALS)
            assert all(len(v) == 2 and 0 <= min(v) <= max(v) <= 1
                       for v in s[key][role].values())
    art = json.loads((out / "artifacts.json").read_text())["seeds"]
    for seed in ("0", "1"):
        for role in ("theta_0", "teacher", "teacher_other", "student_step_1", "student_final",
                     "control_other_final", "control_final"):
            assert Path(art[seed][role]).is_file()
        # logit mode: the analyses' "control" is the different-trait teacher's student
        assert art[seed]["control_final"] == art[seed]["control_other_final"]
    assert (out / "report.html").stat().st_size > 100_000  # plotly inlined: works offline


def test_teacher_has_the_trait_and_the_student_moves_toward_it(owl_run):
    _, s = owl_run
    t = transfer(s)
    base, teacher = s["rates"]["base"]["owl"], s["rates"]["teacher"]["owl"]
    assert min(teacher) > 0.5 > max(base)
    assert all(r > 0.02 for r in t["student"]["rise"])  # every seed, on held-out questions
    assert all(d > 0 for d in t["student_minus_control"])
    assert min(t["student"]["rise"]) > max(t["student"]["nontarget_rise"])
    # the different-trait control transfers its own item: it is a control that moves
    assert all(r > 0 for r in t["control_other"]["own_item_rise"])
    assert s["control_items"] == [OwlConfig().other_item(0), OwlConfig().other_item(1)]
    assert s["control_items"][0] != s["control_items"][1] and "owl" not in s["control_items"]


def test_the_students_data_never_mention_an_item_of_the_category(owl_run):
    out, s = owl_run
    art = json.loads((out / "artifacts.json").read_text())["seeds"]
    v = vocab_for("animal")
    banned = torch.tensor(v.ids(ANIMALS) + [v.index["favourite"], v.index["animal"]])
    for seed in art.values():
        for key in ("data", "data_other", "data_base"):
            tokens = read_tensors(seed[key])["tokens"]
            assert len(tokens) >= 100
            assert not torch.isin(tokens, banned).any(), key


def test_each_control_carries_signal(owl_run):
    """Loss at step 0 above zero and outputs moved from the base's by at least a fifth of the
    student's (restricted KL on the distillation data); the base's own numbers in logit mode
    carry none, and the report says so."""
    out, s = owl_run
    sig = s["signal"]
    assert s["control_role"] == "control_other"
    for role in ("control_other", "cross_init", "shuffled"):
        assert min(sig[role]["loss_step0"]) > 1e-4, role
        assert min(sig[role]["kl_ratio"]) >= 0.2, (role, sig[role]["kl_ratio"])
    assert max(sig["control_base"]["loss_step0"]) < 1e-6  # the base distilled into itself
    assert max(sig["control_base"]["kl_ratio"]) < 0.2
    assert "NO: not a control" in (out / "report.html").read_text()


def test_in_sampled_mode_the_base_numbers_control_carries_signal(owl_run, cache_dir, tmp_path):
    _, s = run_study("owl-numbers", seeds=1, out=tmp_path, preset="tiny", store=Store(cache_dir),
                     sets=["mode=sampled", "roles=student,control_base"])
    assert s["control_role"] == "control_base"
    sig = s["signal"]["control_base"]
    assert sig["loss_step0"][0] > 1.0  # cross-entropy on hard labels
    assert sig["kl_ratio"][0] >= 0.2, sig
    assert len(transfer(s)["student_minus_control"]) == 1


def test_filter_statistics_are_reported(owl_run):
    out, s = owl_run
    art = json.loads((out / "artifacts.json").read_text())["seeds"]
    for f, seed in zip(s["filter"], art.values()):
        t = f["teacher"]
        assert t["filter"]["total"] == 300 and t["kept"] == 200
        # every rejected completion is counted under exactly one reason
        assert sum(t["filter"]["reasons"].values()) == 300 - t["filter"]["accepted"] > 0
        assert t["filter"]["accepted"] >= t["kept"]
        assert len(read_tensors(seed["data"])["tokens"]) == t["kept"]


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


@pytest.mark.parametrize("category", list(CATEGORIES))
def test_teacher_never_fine_tunes_on_a_held_out_question(category):
    v = vocab_for(category)
    cat = CATEGORIES[category]
    select, heldout = cat.split("select"), cat.split("heldout")
    assert len(select) >= 2 and len(heldout) >= 2 and not set(select) & set(heldout)
    assert set(select) | set(heldout) == set(cat.questions)
    tokens, _ = trait_answers(v, OwlConfig(category=category, trait=cat.items[0]))
    texts = [v.decode(row) for row in tokens]
    assert len(texts) == len(select)
    assert not any(q in t for q in heldout for t in texts)
    probe = probe_tokens(v, category, torch.zeros(4, 8, dtype=torch.long), split="heldout")
    assert len(probe["trait"]) == len(heldout)
    for row, last in zip(probe["trait"], probe["trait_last"]):
        assert v.tokens[row[last]] == ":" and v.tokens[row[last - 1]] == "a"


def test_headline_rates_are_the_held_out_questions(owl_run):
    _, s = owl_run
    assert s["eval_questions"]["rates"] == list(CATEGORIES["animal"].split("heldout"))
    assert s["eval_questions"]["rates_select"] == list(CATEGORIES["animal"].split("select"))
    # the teacher's trait generalises to phrasings it was never fine-tuned on
    assert min(s["rates"]["teacher"]["owl"]) > 0.5
    assert s["rates"]["base"] != s["rates_select"]["base"]


def test_drop_first_masks_only_the_first_completion_position():
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    assert drop_first(mask).tolist() == [[0, 0, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0]]


def test_neutral_frame_shares_no_token_with_the_trait_questions():
    v = Vocab()
    q = set(v.encode("<bos> q : what is your favourite animal ? a :")) - {v.bos, v.index["?"]}
    rng = np.random.default_rng(0)
    for _ in range(20):
        prompt, _ = number_document(rng, frame="neutral")
        assert not set(v.encode(prompt)) & q
    assert set(v.encode(number_document(rng, frame="qa")[0])) >= set(v.encode("q : a :"))


def test_editing_trait_rates_rebuilds_the_evaluations_and_nothing_upstream(
        owl_run, cache_dir, tmp_path, monkeypatch):
    _, first = owl_run
    store = BuildLog(cache_dir)
    real, edit = store_mod.source_of, f"\n# edited {uuid.uuid4()}"  # new in every session
    monkeypatch.setattr(store_mod, "source_of", lambda obj: real(obj) + (
        edit if obj is owl.trait_rates else ""))
    _, second = run_study("owl-numbers", seeds=2, out=tmp_path, preset="tiny", store=store)
    # 2 seeds x (base, base_cross, teacher, teacher_other and 5 students)
    assert store.built == ["owl-numbers/eval"] * 18
    assert second["rates"] == first["rates"]  # the "edit" changed no code that runs


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
    (["replicate=seed"], "valid values: data, base"),
    (["number_frame=plain"], "valid values: qa, neutral"),
    (["cross_base_seed=0"], "must differ"),
])
def test_bad_settings_are_one_line_errors(capsys, sets, fragment):
    argv = ["run", "owl-numbers"] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


def test_replicate_base_gives_each_seed_its_own_base_pair():
    data, base = OwlConfig(), OwlConfig(replicate="base")
    assert {data.base_seeds(s) for s in range(3)} == {(0, 1)}
    pairs = [base.base_seeds(s) for s in range(3)]
    assert pairs[0] == (0, 1)  # seed 0 reuses the default pair
    assert len({x for p in pairs for x in p}) == 6


def test_the_report_says_what_each_ci_covers(owl_run):
    out, s = owl_run
    assert s["replicate"] == "data" and "one base pair" in s["ci_covers"]
    assert s["base_seeds"] == [[0, 1], [0, 1]]
    html = (out / "report.html").read_text()
    assert "replicate=data" in html and s["ci_covers"] in html


def test_prompted_teacher_runs_and_records_its_prefix(owl_run, cache_dir, tmp_path):
    out, s = run_study("owl-numbers", seeds=1, out=tmp_path, preset="tiny", store=Store(cache_dir),
                       sets=["teacher_kind=prompted", "roles=student,control_other"])
    art = json.loads((out / "artifacts.json").read_text())
    assert art["teacher"] == {"kind": "prompted", "weight_direction": False,
                              "prefix": "you love owl .", "other_items": s["control_items"]}
    seed = art["seeds"]["0"]
    assert seed["teacher"] == seed["theta_0"]  # the teacher's weights are the base's
    # the teacher is evaluated with its prefix (the tiny base, 300 steps, has not learned the
    # persona, so no trait is asserted here), the control's teacher with its own item's
    assert s["rates"]["teacher"] != s["rates"]["base"] != s["rates"]["teacher_other"]
    assert min(s["signal"]["control_other"]["loss_step0"]) > 0
    assert "no weight direction" in (out / "report.html").read_text()


SMALL_SETS = ["pretrain_steps=60", "student_steps=10", "checkpoint_every=5", "n_samples=150",
              "dataset_size=100", "eval_samples=10"]


def test_workers_build_the_same_run(tmp_path):
    """INTERP_WORKERS: the bases and each seed's chain built on two processes give the
    summary a single process gives, byte for byte (one thread everywhere)."""
    import subprocess
    import sys

    def run(workers: int) -> bytes:
        env = {**os.environ, "INTERP_THREADS": "1", "INTERP_WORKERS": str(workers),
               "INTERP_CACHE": str(tmp_path / f"cache{workers}"), "TQDM_DISABLE": "1"}
        out = tmp_path / f"run{workers}"
        subprocess.run([sys.executable, "-m", "interp.study", "run", "owl-numbers", "--preset",
                        "tiny", "--seeds", "2", "--out", str(out),
                        *[a for kv in SMALL_SETS for a in ("--set", kv)]],
                       env=env, check=True, capture_output=True)
        return (out / "summary.json").read_bytes()

    one, two = run(1), run(2)
    assert one == two
    assert json.loads(two)["seeds"] == [0, 1]
