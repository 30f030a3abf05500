"""interp: a mechanistic-interpretability toolkit for subliminal learning.

Process start (this runs before torch is imported by any ``python -m interp.*`` command):

1. Threads. torch's intra-op thread count is, in order: ``INTERP_THREADS`` (a positive
   integer; the toolkit's own setting, it overrides ``OMP_NUM_THREADS`` and is passed on
   through ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` so torch's pools start at that size), else
   ``OMP_NUM_THREADS`` if set, else torch's own default: the cores this process may run on
   (OpenMP reads the CPU affinity: a Slurm job's or a ``taskset``'s cores, not the
   machine's). The default is left to torch on purpose: exporting ``OMP_NUM_THREADS=2`` and
   ``MKL_NUM_THREADS=2`` for the same 2 threads made two-thread runs stop repeating bit for
   bit while other processes ran (the fault suite's kill/resume and gc cases, which compare
   summary.json bytes, failed with it and pass without it). The store keys every stage by
   the thread count (float sums depend on it), so the same setting reuses the same cache
   entries. A sweep gives each of its workers ``cores // workers`` threads
   (``interp.sweeps``).
   ``INTERP_WORKERS`` (a positive integer; unset means 1) lets a study build its independent
   stages on that many processes (the owl-numbers study: the bases, then one seed's chain
   per worker); every process of such a run, the main one included, then gets
   ``cores // workers`` threads unless ``INTERP_THREADS`` says otherwise, so that all of them
   key their cache entries alike. ``make demo`` sets it to 3 (one per seed of the default
   study; on two cores each process gets one thread): two one-thread processes, a base
   each, pretrain about 1.4 times as fast as one two-thread process with both bases
   stacked (rows ``pretrain`` and ``pretrain_stacked`` of ``benchmarks/pretrain.py``).
2. Waiting threads sleep (``OMP_WAIT_POLICY=PASSIVE`` unless set). With OpenMP's default
   spin-waiting, a run whose threads share a core with another busy process spends most of
   its time spinning at barriers (measured: base pretraining about 25x slower while one
   other CPU-bound process ran); sleeping threads leave the core to whoever has work. The
   policy changes how a thread waits, not what it computes: one-thread runs repeat bit for
   bit under either policy (``tests/test_threads.py``). Runs with 2 threads need not repeat
   bit for bit on a busy machine, under either policy (``analyses/thread_repeat.py`` counts
   the distinct results); a sweep's one-thread workers do. Benchmark row ``contention``.
"""

import contextlib
import os
from collections.abc import Iterator

# sae-lens logs to wandb by default; this toolkit never does.
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_DISABLED", "true")

__version__ = "0.1.0"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def requested_threads(env: "os._Environ[str] | dict[str, str]" = os.environ) -> int | None:
    """``INTERP_THREADS`` as a positive int; None when unset or invalid (the CLIs report an
    invalid value on one line, ``interp.cli.check_threads``)."""
    raw = env.get("INTERP_THREADS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def requested_workers(env: "os._Environ[str] | dict[str, str]" = os.environ) -> int:
    """``INTERP_WORKERS`` as a positive int ("auto": the cores available); 1 when unset or
    invalid (``interp.cli.check_threads`` reports an invalid value)."""
    raw = env.get("INTERP_WORKERS", "").strip()
    if raw == "auto":
        return available_cores()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """Environment variables set inside the block (what a spawned child process starts
    with), each restored, or removed, after it."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _configure_threads() -> None:
    n = requested_threads()
    if n is None and requested_workers() > 1:
        n = max(1, available_cores() // requested_workers())
        os.environ["INTERP_THREADS"] = str(n)  # workers inherit it
    if n is not None:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_configure_threads()
