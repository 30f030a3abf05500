"""The study registry and CLI: listing, and one-line errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from interp.errors import UsageError
from interp.studies.digits import DigitsConfig
from interp.studies.runner import apply_overrides
from interp.study import main

ROOT = Path(__file__).resolve().parents[2]


def test_list_names_the_studies(capsys):
    assert main(["list"]) == 0
    assert "digits-aux" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    (["run", "no-such-study"], "valid studies: digits-aux"),
    (["run", "digits-aux", "--set", "lr=1"], "valid settings: data, hidden"),
    (["run", "digits-aux", "--set", "init=xavier"], "valid values: kaiming, default"),
    (["run", "digits-aux", "--set", "hidden=wide"], "expected int"),
    (["run", "digits-aux", "--set", "hidden"], "expects key=value"),
    (["run", "digits-aux", "--set", "student_lr=-1"], "student_lr must be positive"),
    (["run", "digits-aux", "--set", "data=/no/such/mnist.npz"], "neither 'sklearn'"),
    (["run", "digits-aux", "--seeds", "0"], "--seeds must be at least 1"),
])
def test_bad_input_is_one_line_error(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and fragment in err and "\n" not in err


def test_bad_input_from_the_shell_has_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "interp.study", "run", "digits-aux", "--set",
                        "noise=pink"], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "INTERP_CACHE": str(tmp_path)})
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "valid values: uniform, gaussian" in r.stderr
    assert not list(tmp_path.rglob("manifest.json"))  # nothing written


def test_overrides_parse_types():
    cfg = apply_overrides(DigitsConfig(), ["student_lr=1e-3", "student_steps=10",
                                           "init=default"])
    assert (cfg.student_lr, cfg.student_steps, cfg.init) == (1e-3, 10, "default")
    with pytest.raises(UsageError):
        apply_overrides(DigitsConfig(), ["student_steps=1.5"])


@pytest.mark.parametrize("sets, fragment", [
    (["student_lr=inf"], "expected a finite number"),
    (["student_lr=nan"], "expected a finite number"),
    (["teacher_lr=1e400"], "expected a finite number"),
    (["hidden=1.25e1"], "expected int"),
    (["hidden=1e400"], "expected int"),
    (["hidden=0"], "hidden must be >= 1"),
    (["student_batch=-3"], "student_batch must be >= 1"),
    (["hidden=10000000"], "more than this machine's"),
])
def test_overrides_refuse_non_finite_non_integral_and_too_big(sets, fragment):
    with pytest.raises(UsageError, match=fragment):
        apply_overrides(DigitsConfig(), sets)


def test_overrides_accept_integral_scientific_notation():
    assert apply_overrides(DigitsConfig(), ["hidden=1.28e2"]).hidden == 128


@pytest.mark.parametrize("kwargs, fragment", [
    ({"student_lr": float("nan")}, "student_lr must be a finite number"),
    ({"hidden": 12.0}, "hidden must be an integer"),
    ({"hidden": True}, "hidden must be an integer"),
    ({"init": "xavier"}, "valid values: kaiming, default"),
])
def test_config_post_init_validates(kwargs, fragment):
    with pytest.raises(UsageError, match=fragment):
        DigitsConfig(**kwargs)


def test_owl_config_refuses_seed_past_2_63_and_memory():
    from interp.studies.owl import OwlConfig

    with pytest.raises(UsageError, match="base_seed must be in"):
        OwlConfig(base_seed=2**63)
    with pytest.raises(UsageError, match="more than this machine's"):
        OwlConfig(d_model=400_000, n_heads=4)


@pytest.mark.parametrize("argv, fragment", [
    (["--seed-start", str(2**64 + 1)], "--seed-start must be in"),
    (["--seeds", str(10**9)], "--seeds must be at least 1 and at most"),
])
def test_seed_range_errors(capsys, argv, fragment):
    assert main(["run", "digits-aux", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and fragment in err and "\n" not in err
