"""Shared fixtures: one small trained run per study, built once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")

# a small digits-aux config that still transfers clearly (about 10 s for 3 seeds)
SMALL_DIGITS = ["hidden=128", "student_steps=500", "checkpoint_every=250"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One artifact store for the whole session, so expensive stages are built once."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["INTERP_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def digits_run(cache_dir, tmp_path_factory):
    from interp.store import Store
    from interp.study import run_study

    out = tmp_path_factory.mktemp("digits-run")
    return run_study("digits-aux", seeds=3, seed_start=0, out=out, sets=SMALL_DIGITS,
                     store=Store(cache_dir))
