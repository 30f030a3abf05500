"""Shared fixtures: one small trained run per study, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")



@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One artifact store for the whole session, so expensive stages are built once.
    ``INTERP_TEST_CACHE=DIR`` keeps it across sessions (for iterating on tests)."""
    keep = os.environ.get("INTERP_TEST_CACHE")
    path = Path(keep) if keep else tmp_path_factory.mktemp("cache")
    os.environ["INTERP_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def digits_run(cache_dir, tmp_path_factory):
    from interp.storage.store import Store
    from interp.studies.runner import run_study

    out = tmp_path_factory.mktemp("digits-run")
    # the "small" preset still transfers clearly (about 10 s for 3 seeds)
    return run_study("digits-aux", seeds=3, seed_start=0, out=out, preset="small",
                     store=Store(cache_dir))




@pytest.fixture(scope="session")
def owl_run(cache_dir, tmp_path_factory):
    from interp.storage.store import Store
    from interp.studies.runner import run_study

    out = tmp_path_factory.mktemp("owl-run")
    # the "tiny" preset: a 1-layer d_model 32 transformer, a few hundred steps
    return run_study("owl-numbers", seeds=2, seed_start=0, out=out, preset="tiny",
                     store=Store(cache_dir))
