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
