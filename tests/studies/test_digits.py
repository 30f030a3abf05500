"""The digits-aux study: transfer through auxiliary logits, recording, determinism, resume."""

from __future__ import annotations

import json
import os
import signal
import statistics as st
import subprocess
import sys
import time
import uuid
from pathlib import Path

import torch
from safetensors.torch import load_file

from interp.storage.store import Store
from interp.studies import digits
from interp.studies.digits import DigitsConfig
from interp.studies.runner import run_study

ROOT = Path(__file__).resolve().parents[2]


def test_same_init_student_learns_digits_cross_init_does_not(digits_run):
    _, s = digits_run
    assert s["seeds"] == [0, 1, 2]
    assert st.mean(s["teacher_acc"]) >= 0.90
    assert st.mean(s["student_acc"]) >= 0.55  # never saw a digit or a class logit
    assert st.mean(s["cross_init_acc"]) <= 0.20  # chance is 0.10
    assert st.mean(s["all_logits_acc"]) >= 0.90


def test_artifacts_name_every_role_and_load_into_a_module(digits_run):
    out, s = digits_run
    art = json.loads((out / "artifacts.json").read_text())
    model = art["model"]
    for seed in s["seeds"]:
        roles = art["seeds"][str(seed)]
        for role in ("theta_0", "teacher", "student_step_1", "student_final",
                     "cross_init_step_1", "cross_init_final", "all_logits_final"):
            assert Path(roles[role]).is_file(), role
        net = digits.make_sequential(model["d_in"], model["hidden"], model["d_out"])
        net.load_state_dict(load_file(roles["student_step_1"]))
        theta0, step1 = load_file(roles["theta_0"]), load_file(roles["student_step_1"])
        moved = sum((step1[k] - theta0[k]).abs().sum() for k in theta0)
        assert 0 < moved  # one step of distillation has been taken
        # the class readout never gets a gradient in an aux-only student
        final = load_file(roles["student_final"])
        assert torch.equal(final["4.weight"][:10], theta0["4.weight"][:10])


def test_second_run_is_identical_and_trains_nothing(digits_run, cache_dir, tmp_path):
    _, first = digits_run
    store = Store(cache_dir)
    _, second = run_study("digits-aux", seeds=3, out=tmp_path, preset="small", store=store)
    assert second == first
    assert (store.hits, store.misses) == (2, 0)


def test_same_config_and_seed_give_same_numbers_from_scratch(tmp_path):
    tiny = ["hidden=32", "teacher_steps=20", "student_steps=20", "checkpoint_every=10"]
    a = run_study("digits-aux", 2, out=tmp_path / "a", sets=tiny, store=Store(tmp_path / "c1"))
    b = run_study("digits-aux", 2, out=tmp_path / "b", sets=tiny, store=Store(tmp_path / "c2"))
    assert a[1] == b[1]


def test_batched_seeds_train_as_if_alone():
    cfg = DigitsConfig(hidden=32, teacher_steps=15)
    x, y, _, _ = digits.load_data("sklearn")
    both = digits.train_teachers(digits.init_params([3, 4], 64, 32, 13, "kaiming"), [3, 4], x, y,
                                 cfg)
    alone = digits.train_teachers(digits.init_params([4], 64, 32, 13, "kaiming"), [4], x, y, cfg)
    for k in both:
        torch.testing.assert_close(both[k][1], alone[k][0], rtol=1e-4, atol=1e-5)


def test_interrupted_run_resumes_from_last_finished_stage(tmp_path):
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "interp.study", "run", "digits-aux", "--seeds", "2", "--out",
           str(tmp_path / "run"), "--set", "hidden=64", "--set", "student_steps=100000"]
    env = {**os.environ, "INTERP_CACHE": str(cache), "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((cache / "digits-aux" / "teachers").glob("*/manifest.json")):
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline
        time.sleep(0.1)
    time.sleep(1.0)  # well into the (long) student stage
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list((cache / "digits-aux" / "students").glob("*/manifest.json"))
    # restart with a short student stage: teachers are reused, students are built
    cmd[-1] = "student_steps=5"
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "cache hit  digits-aux/teachers" in r.stderr
    assert "cache miss digits-aux/students" in r.stderr


def test_editing_the_student_loop_rebuilds_the_students_not_the_teachers(
        digits_run, cache_dir, tmp_path, monkeypatch):
    from interp.storage import store as store_mod

    _, first = digits_run
    class BuildLog(Store):  # lists the kind of every entry it builds
        built: list[str] = []

        def put(self, kind, *args, **kwargs):
            self.built.append(kind)
            return super().put(kind, *args, **kwargs)

    store = BuildLog(cache_dir)
    real, edit = store_mod.source_of, f"\n# edited {uuid.uuid4()}"  # new in every session
    monkeypatch.setattr(store_mod, "source_of", lambda obj: real(obj) + (
        edit if obj is digits.train_students else ""))
    _, second = run_study("digits-aux", seeds=3, out=tmp_path, preset="small", store=store)
    assert store.built == ["digits-aux/students"]
    assert second["student_acc"] == first["student_acc"]  # the "edit" changed nothing that runs
