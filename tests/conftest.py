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


# a tiny owl-numbers config: a 1-layer d_model 32 transformer, a few hundred steps
TINY_OWL = ["d_model=32", "n_layers=1", "n_heads=2", "d_mlp=128", "pretrain_steps=300",
            "pretrain_batch=32", "n_samples=300", "dataset_size=200", "student_steps=60",
            "checkpoint_every=30", "eval_samples=50"]


@pytest.fixture(scope="session")
def owl_run(cache_dir, tmp_path_factory):
    from interp.store import Store
    from interp.study import run_study

    out = tmp_path_factory.mktemp("owl-run")
    return run_study("owl-numbers", seeds=2, seed_start=0, out=out, sets=TINY_OWL,
                     store=Store(cache_dir))
