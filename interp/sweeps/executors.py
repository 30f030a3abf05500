"""Where a sweep's studies run: a small registry of submitit executors.

1. Each cell becomes a ``CellJob``: strings and ints only (study name, overrides, seeds, run
   directory, cache path, thread count), never tensors; the worker rebuilds everything from
   them and the store.
2. ``local``: ``submitit.LocalExecutor``, one process per study, at most ``workers`` at a
   time (a new one starts as one finishes). ``slurm``: ``submitit.SlurmExecutor``, one job
   array with ``%workers`` as its concurrency limit, ``cpus_per_task`` cores per task.
3. A worker sets ``INTERP_THREADS`` before Python starts (submitit's ``setup`` lines) and
   ``torch.set_num_threads`` before any work, so workers x threads <= cores; then it runs
   ``runner.run_study`` and, once the study is finished, writes ``sweep-cell.json`` into the
   cell's run directory (the sweep's record that the cell needs no rerun).
4. A stage two workers need at once is built once (the store's per-entry lock: the second
   waits and then reads it). A killed or pre-empted worker leaves its finished stages in the
   store: a rerun (or Slurm's requeue, ``CellRunner`` is ``Checkpointable``) builds only
   what is missing.

Owns: ``CellJob``, ``run_cell``, ``EXECUTORS``. Must not import: reports, analysis, the CLIs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import submitit

from interp.errors import UsageError
from interp.storage.store import Store, write_json

log = logging.getLogger("interp.sweeps.executors")

RECORD = "sweep-cell.json"
POLL_S = 0.5


@dataclasses.dataclass(frozen=True)
class CellJob:
    """Everything a worker needs, as plain values."""

    study: str
    preset: str | None
    sets: tuple[str, ...]
    seeds: int
    seed_start: int
    out: str
    cache: str
    threads: int
    key: str
    label: str


def run_cell(job: CellJob) -> dict:
    """Run one cell's study in this process with ``job.threads`` torch threads; returns (and
    writes) its record."""
    import torch

    from interp.studies.runner import run_study

    torch.set_num_threads(job.threads)
    t0 = time.time()
    run_study(job.study, job.seeds, job.seed_start, job.out, list(job.sets), job.preset,
              Store(Path(job.cache)))
    record = {"key": job.key, "label": job.label, "threads": torch.get_num_threads(),
              "seconds": round(time.time() - t0, 3), "host": socket.gethostname(),
              "job_id": os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_JOB_ID", ""),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json(Path(job.out) / RECORD, record)
    return record


class CellRunner(submitit.helpers.Checkpointable):
    """The callable submitit pickles: on Slurm pre-emption or time-out it is requeued with
    the same job, which resumes from the store."""

    def __call__(self, job: CellJob) -> dict:
        return run_cell(job)


OnDone = Callable[[CellJob, "dict | BaseException"], None]


def _setup(threads: int, extra: tuple[str, ...] = ()) -> list[str]:
    # a cell is one worker's job: the study inside it runs on one process
    return [*extra, f"export INTERP_THREADS={threads}", "export INTERP_WORKERS=1"]


def _wait(pending: list[tuple[CellJob, submitit.Job]], on_done: OnDone) \
        -> list[tuple[CellJob, submitit.Job]]:
    """Report the finished jobs of ``pending``; return the rest."""
    rest = []
    for cj, job in pending:
        if not job.done():
            rest.append((cj, job))
            continue
        try:
            on_done(cj, job.result())
        except Exception as e:  # a failed study: reported, the others go on
            on_done(cj, e)
    return rest


def _cancel(pending: list[tuple[CellJob, submitit.Job]]) -> None:
    for _, job in pending:
        try:
            job.cancel(check=False)
        except Exception as e:  # already gone
            log.debug("cancel %s: %s", job.job_id, e)


def run_local(jobs: list[CellJob], folder: Path, workers: int, timeout_min: int,
              on_done: OnDone, **_: object) -> None:
    """One local process per job, ``workers`` at a time."""
    queue = list(jobs)
    pending: list[tuple[CellJob, submitit.Job]] = []
    try:
        while queue or pending:
            while queue and len(pending) < workers:
                cj = queue.pop(0)
                ex = submitit.LocalExecutor(folder=folder)
                ex.update_parameters(timeout_min=timeout_min, setup=_setup(cj.threads))
                pending.append((cj, ex.submit(CellRunner(), cj)))
            pending = _wait(pending, on_done)
            if pending:
                time.sleep(POLL_S)
    finally:
        _cancel(pending)  # interrupted: do not leave orphan workers behind


def run_slurm(jobs: list[CellJob], folder: Path, workers: int, timeout_min: int,
              on_done: OnDone, slurm: object = None, name: str = "sweep") -> None:
    """One Slurm job array, at most ``workers`` tasks running at once."""
    import shutil

    if not jobs:
        return
    if shutil.which("sbatch") is None:
        raise UsageError("--executor slurm needs Slurm's sbatch on PATH; run on a cluster's "
                         "login node, or use --executor local")
    ex = submitit.SlurmExecutor(folder=folder)
    params = {"job_name": f"interp-{name}", "time": timeout_min,
              "cpus_per_task": slurm.cpus_per_task, "mem": f"{slurm.mem_gb:g}GB",
              "array_parallelism": workers, "setup": _setup(jobs[0].threads, slurm.setup)}
    if slurm.partition:
        params["partition"] = slurm.partition
    if slurm.additional:
        params["additional_parameters"] = dict(slurm.additional)
    ex.update_parameters(**params)
    try:
        submitted = ex.map_array(CellRunner(), jobs)
    except Exception as e:  # sbatch refused (unknown partition, limits)
        raise UsageError(f"sbatch refused the job array: {str(e).strip().splitlines()[-1]}; "
                         "check the [slurm] settings of the spec") from None
    log.info("submitted Slurm job array %s (%d tasks, %d at a time)",
             submitted[0].job_id.split("_")[0], len(jobs), workers)
    pending = list(zip(jobs, submitted))
    try:
        while pending:
            pending = _wait(pending, on_done)
            if pending:
                time.sleep(POLL_S)
    except BaseException:
        _cancel(pending)
        raise


EXECUTORS: dict[str, Callable[..., None]] = {"local": run_local, "slurm": run_slurm}
