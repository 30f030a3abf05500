"""Process-start thread settings (``interp/__init__.py``): INTERP_THREADS, the cores the
process may run on, and the passive OpenMP wait policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("import interp, torch; print(torch.get_num_threads(), "
         "__import__('os').environ['OMP_WAIT_POLICY'])")
# a few pretraining steps of a small transformer; prints a hash of the trained weights
TRAIN = """
import hashlib, interp, numpy as np, torch
from interp.studies import lm
from interp.studies.world import Vocab, WorldConfig, corpus_batch
v = Vocab(); m = lm.build_model(lm.ModelConfig(d_model=64, d_mlp=256), len(v), 64, 0)
opt = torch.optim.AdamW(m.parameters(), lr=3e-3); rng = np.random.default_rng(0)
for _ in range(4):
    t = corpus_batch(v, WorldConfig(), rng, 32)
    loss = lm.next_token_loss(m(t), t, t != v.pad); opt.zero_grad(); loss.backward(); opt.step()
h = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in m.parameters()))
print(torch.get_num_threads(), h.hexdigest())
"""


def py(code: str, **env: str | None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items()
         if k not in ("INTERP_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                      "OMP_WAIT_POLICY")}
    e.update({k: v for k, v in env.items() if v is not None}, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_interp_threads_and_affinity_set_torch_threads():
    cores = len(os.sched_getaffinity(0))
    assert py(PROBE).stdout.split() == [str(cores), "PASSIVE"]
    assert py(PROBE, INTERP_THREADS="1", OMP_NUM_THREADS="3").stdout.split()[0] == "1"
    assert py(PROBE, OMP_NUM_THREADS="1").stdout.split()[0] == "1"  # the user's choice stays
    assert py(PROBE, OMP_WAIT_POLICY="ACTIVE").stdout.split()[1] == "ACTIVE"


def test_invalid_interp_threads_is_a_one_line_error():
    r = subprocess.run([sys.executable, "-m", "interp.study", "list"], capture_output=True,
                       text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, "INTERP_THREADS": "two", "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: INTERP_THREADS must be a positive integer (torch "
                                "threads per process), got 'two'; unset it to use the cores "
                                "available")


@pytest.mark.slow
def test_one_thread_repeats_bit_for_bit_under_either_wait_policy():
    # a sweep's workers on a shared machine run one thread each; those numbers must repeat
    # (with 2 threads they need not: analyses/thread_repeat.py)
    active = py(TRAIN, INTERP_THREADS="1", OMP_WAIT_POLICY="ACTIVE")
    passive = py(TRAIN, INTERP_THREADS="1")
    assert active.returncode == 0, active.stderr
    assert active.stdout.split()[0] == "1"
    assert passive.stdout == active.stdout
