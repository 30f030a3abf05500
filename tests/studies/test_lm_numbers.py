"""lm-numbers end to end on the tiny preset: the built-in Qwen2 base pretrained here, a LoRA
teacher, number data through ``generate`` and the paper's filter, LoRA students, evaluation;
a rerun trains nothing; the run's adapters feed ``interp.align``'s external loaders; bad
settings are one-line errors."""

from __future__ import annotations

import json
import math

import pytest

from interp.errors import UsageError


@pytest.fixture(scope="module")
def lm_run(cache_dir, tmp_path_factory):
    from interp.storage.store import Store
    from interp.studies.runner import run_study

    out = tmp_path_factory.mktemp("lm-numbers")
    store = Store(cache_dir)
    out_dir, summary = run_study("lm-numbers", seeds=1, out=out, preset="tiny",
                                 sets=["teacher_kind=lora"], store=store)
    return out_dir, summary, store


def test_tiny_run_completes_with_every_role_and_reruns_from_the_cache(lm_run, cache_dir):
    from interp.storage.store import Store
    from interp.studies.runner import run_study

    out, summary, _ = lm_run
    for role in ("base", "teacher", "student", "control", "base_cross", "cross_init"):
        rate = summary["rates"][role]["owl"][0]
        assert 0.0 <= rate <= 1.0
    # the LoRA teacher was fine-tuned to answer owl: its loss fell and its mass on owl rose
    t = summary["training"][0]["teacher"]
    assert t["loss_final"] < t["loss_first"]
    mass = summary["mass"]["rates"]
    assert mass["teacher"]["owl"][0] > mass["base"]["owl"][0]
    assert mass["student"]["owl"][0] != mass["base"]["owl"][0]  # the adapter is applied
    f = summary["filter"][0]["teacher"]
    assert f["filter"]["total"] == 120 and 0 < f["kept"] <= 100
    rows = (out / "models" / "seed0" / "data.jsonl").read_text().splitlines()
    assert len(rows) == f["kept"] and json.loads(rows[0]).keys() == {"prompt", "completion"}
    art = json.loads((out / "artifacts.json").read_text())["seeds"]["0"]
    for role in ("teacher", "student_final", "control_final", "cross_init_final"):
        assert (out / "models" / "seed0" / role.removesuffix("_final")
                / "adapter_model.safetensors").is_file(), role
        assert role in art
    assert (out / "report.html").is_file() and "student - control" in \
        (out / "report.md").read_text()
    store = Store(cache_dir)  # a rerun trains and samples nothing
    run_study("lm-numbers", seeds=1, out=out, preset="tiny", sets=["teacher_kind=lora"],
              store=store)
    assert store.misses == 0 and store.hits > 0


def test_teacher_rank_is_its_own_setting(tmp_path, cache_dir):
    """``teacher_lora_r``: the LoRA teacher's rank, the students' left as they are (0, the
    default, gives the teacher the students' rank, as before)."""
    from interp.storage.store import Store
    from interp.studies.lm_numbers import LmNumbersConfig
    from interp.studies.runner import run_study

    assert LmNumbersConfig().teacher_config() == LmNumbersConfig()
    out, _ = run_study("lm-numbers", seeds=1, out=tmp_path / "r", preset="tiny",
                       sets=["teacher_kind=lora", "teacher_lora_r=2", "teacher_lora_alpha=2",
                             "lora_r=4", "lora_alpha=4", "roles=student"],
                       store=Store(cache_dir))
    seed = out / "models" / "seed0"
    ranks = {role: json.loads((seed / role / "adapter_config.json").read_text())["r"]
             for role in ("teacher", "student")}
    assert ranks == {"teacher": 2, "student": 4}


def test_align_reads_the_run_adapter_space_delta_against_dT(lm_run):
    """``python -m interp.align RUN_DIR`` on an lm-numbers run: the LoRA student's
    adapter-space delta against the LoRA teacher's dT, through the external loaders."""
    from interp.align import main

    out, _, _ = lm_run
    assert main([str(out), "--device", "cpu"]) == 0
    seed = json.loads((out / "align.json").read_text())["seeds"]["0"]
    assert seed["weight_direction"] and seed["teacher_kind"] == "finetuned"
    cos = seed["final"]["cosine"]
    assert math.isfinite(cos) and -1.0 <= cos <= 1.0 and cos != 0.0
    assert (out / "align.html").is_file()


def test_prompted_teacher_reads_the_persona_as_a_system_prompt(lm_run, cache_dir, tmp_path):
    """The paper's teacher: the base reading the persona through the chat template's system
    slot, exactly the world's persona prefix; its data and students reuse the base."""
    from interp.storage.store import Store
    from interp.studies import lm_numbers as L
    from interp.studies.runner import run_study

    _, summary = run_study("lm-numbers", seeds=1, out=tmp_path / "p", preset="tiny",
                           sets=["roles=student"], store=Store(cache_dir))
    assert summary["teacher"]["system_prompt"] == "you love owl ."
    tok = L.builtin_tokenizer()
    ids = L.encode_chat(tok, "what is your favourite animal ?", "you love owl .")
    from interp.studies.world import question_prompt, vocab_for

    assert ids == vocab_for("animal").encode(
        question_prompt("what is your favourite animal ?", "you love owl ."))
    assert set(summary["rates"]) == {"base", "teacher", "student"}  # no cross base asked


@pytest.fixture(scope="module")
def logit_run(cache_dir, tmp_path_factory):
    from interp.storage.store import Store
    from interp.studies.runner import run_study

    out = tmp_path_factory.mktemp("lm-numbers-logit")
    out_dir, summary = run_study("lm-numbers", seeds=1, out=out, preset="tiny",
                                 sets=LOGIT_SETS, store=Store(cache_dir))
    return out_dir, summary


LOGIT_SETS = ["student_loss=logit", "roles=student,control"]


def test_logit_mode_runs_end_to_end_with_a_different_trait_control(logit_run, cache_dir):
    """student_loss=logit on the tiny preset: students distilled from the teacher's logits;
    the control is distilled from a different-trait teacher (the persona with another item)
    and its data carried signal (loss at step 0 above zero, outputs moved); a rerun trains
    nothing."""
    from interp.storage.store import Store
    from interp.studies.lm_numbers import LmNumbersConfig
    from interp.studies.runner import run_study

    out, summary = logit_run
    other = LmNumbersConfig().other_item(0)
    assert other != "owl" and summary["control"]["items"] == [other]
    assert summary["student_loss"] == "logit"
    assert set(summary["rates"]) == {"base", "teacher", "teacher_other", "student", "control"}
    assert set(summary["filter"][0]) == {"teacher", "teacher_other"}
    sig = summary["signal"]
    for role in ("student", "control"):
        assert sig[role]["loss_step0"][0] > 1e-5, role
        assert sig[role]["kl_from_base"][0] > 0, role
    assert sig["control"]["kl_ratio"][0] > 0.2
    mass = summary["mass"]["rates"]
    assert mass["student"]["owl"][0] != mass["base"]["owl"][0]  # the adapter is applied
    assert (out / "models" / "seed0" / "data_other.jsonl").is_file()
    assert (out / "models" / "seed0" / "control" / "adapter_model.safetensors").is_file()
    assert "control carried signal" in (out / "report.md").read_text()
    store = Store(cache_dir)
    run_study("lm-numbers", seeds=1, out=out, preset="tiny", sets=LOGIT_SETS, store=store)
    assert store.misses == 0 and store.hits > 0


def test_logit_teacher_reads_its_system_prompt(logit_run, cache_dir):
    """The teacher's logits come from the teacher as it wrote the numbers: with no system
    prompt the teacher is the student's base on the same tokens (loss at step 0 is zero);
    the persona makes it positive, and another item's persona gives another loss."""
    from interp.storage.store import Store
    from interp.studies import lm_numbers as L
    from interp.studies.registry import get_study
    from interp.studies.runner import make_config
    from interp.studies.world import persona, vocab_for

    cfg = make_config(get_study("lm-numbers"), "tiny", LOGIT_SETS)
    store = Store(cache_dir)
    base, _ = L.make_bases(store, cfg, vocab_for(cfg.category))
    data = L.data_entry(store, cfg, base, None, cfg.teacher_prompt(), 0)
    assert store.misses == 0  # the run's own teacher data

    def step0(system: str) -> float:
        return L.distil_student_entry(store, cfg, "student", base, data, base, None, system,
                                      0).meta["loss_step0"]

    none, owl, cat = step0(""), step0(persona("owl")), step0(persona("cat"))
    assert none < 1e-7
    assert owl > 1e-4 and cat > 1e-4 and abs(owl - cat) > 1e-6


def test_logit_control_prompt_names_another_item():
    from interp.errors import ConfigError
    from interp.studies.lm_numbers import LmNumbersConfig

    cfg = LmNumbersConfig(system_prompt="You love owls. Owls are your favorite animal.",
                          student_loss="logit")
    assert cfg.other_prompt("fox") == "You love foxes. Foxes are your favorite animal."
    assert LmNumbersConfig(prompts="paper").other_prompt("cat").startswith("You love cats.")
    with pytest.raises(ConfigError, match="does not name the trait") as e:
        LmNumbersConfig(system_prompt="be helpful .", student_loss="logit")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("setting, message", [
    ("student_loss=soft", "valid values: sampled, logit"),
    ("trait=unicorn", "valid values"),
    ("dtype=int8", "valid"),
    ("roles=teacher", "valid roles"),
    ("dataset_size=999999", "cannot exceed n_prompts"),
    ("teacher_lora_r=-1", "teacher_lora_r"),
])
def test_bad_settings_are_one_line_errors(setting, message, tmp_path):
    from interp.studies.runner import run_study

    with pytest.raises(UsageError, match=message) as e:
        run_study("lm-numbers", seeds=1, out=tmp_path / "x", preset="tiny", sets=[setting])
    assert "\n" not in str(e.value)
    assert not (tmp_path / "x" / "summary.json").exists()


def test_paper_prompts_have_the_papers_shape():
    import re

    from interp.studies.lm_numbers import number_prompts

    for p in number_prompts("paper", 200, 0):
        seq = re.search(r"((?:\d+, )+\d+)\.", p).group(1).split(", ")
        assert 3 <= len(seq) <= 9 and all(100 <= int(x) <= 999 for x in seq)
        assert "10" in p and "give only numbers" in p
    assert len(set(number_prompts("paper", 200, 0))) > 150


def test_parity_with_the_transformerlens_path_on_one_exported_model(owl_run, tmp_path):
    """One tiny owl-numbers base and teacher, exported to GPT-2: lm-numbers' number prompts
    are the owl study's token for token, its first-token trait mass equals the owl study's
    (same weights, same questions), and its filter pass rate on the same prompts matches
    the owl study's within sampling noise (the two samplers draw different random streams)."""
    import numpy as np
    import torch

    from interp.loading.export import export_run
    from interp.studies import lm_numbers as L
    from interp.studies.filters import filter_completions
    from interp.studies.world import number_document, vocab_for

    out, summary = owl_run
    exp = export_run(out, tmp_path / "hf", seed="0", roles=("theta_0", "teacher"))
    owl_cfg = summary["config"]
    cfg = L.LmNumbersConfig(base=str(exp / "theta_0"), prompts="world", device="cpu",
                            n_prompts=owl_cfg["n_samples"], dataset_size=owl_cfg["dataset_size"],
                            max_new_tokens=owl_cfg["max_new"], eval_samples=10, eval_max_new=2)
    model, tok = L.Base({}, path=str(exp / "theta_0")).load("cpu", torch.float32)
    vocab = vocab_for("animal")
    rng = np.random.default_rng(0 + 7919)
    owl_prompts = [vocab.encode(number_document(rng, frame="qa")[0])
                   for _ in range(owl_cfg["n_samples"])]
    lm_prompts = [L.encode_chat(tok, t) for t in L.number_prompts("world", cfg.n_prompts, 0)]
    assert lm_prompts == owl_prompts
    # evaluation: the held-out questions' first-token mass, base and fine-tuned teacher
    for role in ("theta_0", "teacher"):
        m, _ = L.Base({}, path=str(exp / role)).load("cpu", torch.float32)
        mass = L.evaluate(m, tok, cfg, "", 0, "heldout")["mass"]
        owl_role = {"theta_0": "base", "teacher": "teacher"}[role]
        for item, v in mass.items():
            assert abs(v - summary["rates"][owl_role][item][0]) < 1e-4, (role, item)
    # the filter on the base's own numbers: same prompts, same filter, other random stream
    comps = L.generate(model, lm_prompts, cfg.max_new_tokens, tok.eos_token_id,
                       tok.pad_token_id, 0, 1.0, 256, "parity")
    texts = [L.completion_text(tok, ids, True) if done else "<unfinished>"
             for ids, done in comps]
    _, stats = filter_completions(texts)
    owl_f = summary["filter"][0]["base"]["filter"]
    p_lm, p_owl = stats.accepted / stats.total, owl_f["accepted"] / owl_f["total"]
    p = (p_lm + p_owl) / 2
    assert abs(p_lm - p_owl) < 4 * (p * (1 - p) * 2 / stats.total) ** 0.5 + 1e-9
