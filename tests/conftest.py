"""Shared builders: one small trained run per study, and the align and fingerprint reports
on the owl run, each built once per test session."""

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


@pytest.fixture(scope="session")
def aligned_owl(owl_run, cache_dir):
    """The align report (analyse + write) on the tiny owl run: (run dir, AlignResult)."""
    from interp.analysis.align import analyse
    from interp.reports.align import write
    from interp.storage.store import Store

    out, _ = owl_run
    result = analyse(out, Store(cache_dir))
    write(out, result)
    return out, result


def _small_fingerprint():
    from interp.analysis.fingerprint import FingerprintConfig
    from interp.analysis.sae import SAEConfig

    return FingerprintConfig(sae=SAEConfig(expansion=4, k=8.0, samples=80_000, batch=256),
                             corpus_docs=600, random_draws=3)


SMALL_FINGERPRINT = _small_fingerprint()


@pytest.fixture(scope="session")
def fingerprinted(owl_run, cache_dir):
    """The fingerprint report (small SAEs) on the tiny owl run: (run dir, FingerprintResult);
    its SAEs saved in sae-lens's layout under ``saes/<hook>``."""
    from interp.analysis.fingerprint import analyse
    from interp.reports.fingerprint import write
    from interp.storage.store import Store

    out, _ = owl_run
    result = analyse(out, SMALL_FINGERPRINT, Store(cache_dir), sae_out=out / "saes")
    write(out, result)
    return out, result

