"""Running a sweep: expand the spec, skip finished cells, run the rest, write the table.

1. Expand the spec into cells and build every cell's config (bad input fails here, before
   any work), pick the thread count per worker (``threads``: the spec's, else on Slurm the
   task's ``cpus_per_task``, else the cores available divided by ``workers``).
2. A cell is finished when its run directory holds ``summary.json`` and a
   ``sweep-cell.json`` record with the cell's key (study, config, seeds, threads); finished
   cells are not resubmitted. The others go to the executor, whose workers hit the store for
   every stage that exists (a sweep killed half-way resumes where it stopped).
3. A progress bar counts finished cells (``--table-only``: run nothing and tabulate the
   cells finished so far, even while the sweep runs); each result is logged as it arrives. A failed
   cell does not stop the others; the sweep then ends with a one-line error naming the
   failed cells and their logs, and writes no table.
4. The table (``interp.sweeps.table``) is written from the cells' ``summary.json``.

The sweep's output directory holds ``cells/`` (one run directory per cell), ``jobs/``
(submitit's job folders: its own pickled calls and the workers' logs), ``sweep.json``,
``sweep.md`` and ``sweep.html``. A second sweep into the same directory waits for the first.

Owns: ``run_sweep``, ``worker_threads``, ``plan``. Must not import: analysis, the CLIs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from pathlib import Path

from tqdm.auto import tqdm

from interp import available_cores
from interp.errors import UsageError
from interp.storage.rundir import check_writable_dir, run_lock
from interp.storage.store import Store
from interp.sweeps import table
from interp.sweeps.executors import EXECUTORS, RECORD, CellJob
from interp.sweeps.spec import Cell, SweepSpec, cells

log = logging.getLogger("interp.sweeps.runner")


def worker_threads(spec: SweepSpec) -> int:
    if spec.threads:
        return spec.threads
    if spec.executor == "slurm":
        return spec.slurm.cpus_per_task
    return max(1, available_cores() // spec.workers)


def _record(run_dir: Path, key: str) -> dict | None:
    """The cell's record if the cell finished with this key, else None."""
    try:
        record = json.loads((run_dir / RECORD).read_text())
        summary_ok = (run_dir / "summary.json").is_file()
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("key") == key and summary_ok \
        else None


@dataclasses.dataclass
class Plan:
    cells: list[Cell]
    threads: int
    done: dict[str, dict]  # label -> record of the finished cells
    jobs: list[CellJob]


def plan(spec: SweepSpec, store: Store | None = None) -> Plan:
    """The cells, which are finished, and the jobs for the rest."""
    store = store if store is not None else Store()
    cs = cells(spec)
    threads = worker_threads(spec)
    done, jobs = {}, []
    for c in cs:
        key, run_dir = c.key(spec.study, threads), c.run_dir(spec, threads)
        rec = _record(run_dir, key)
        if rec is not None:
            done[c.label] = rec
        else:
            jobs.append(CellJob(spec.study, spec.preset, c.sets, len(c.seeds), c.seeds[0],
                                str(run_dir.resolve()), str(store.root), threads, key, c.label))
    return Plan(cs, threads, done, jobs)


def run_sweep(spec: SweepSpec, store: Store | None = None, progress: bool = True,
              table_only: bool = False) -> Path:
    """Run the sweep; returns its output directory (holding sweep.json/.md/.html).
    ``table_only``: run nothing, write the table of the cells finished so far (the
    unfinished ones are listed in it)."""
    store = store if store is not None else Store()
    columns = table.check_columns(spec.study, [c for c in (spec.metric, *spec.columns) if c])
    columns = list(dict.fromkeys(columns))
    out = spec.out_dir
    check_writable_dir(out, "the sweep's out")
    check_writable_dir(store.root, "the cache (INTERP_CACHE)")
    # a partial table may be written while the sweep runs (the sweep rewrites it at the end)
    with contextlib.nullcontext() if table_only else run_lock(out):
        p = plan(spec, store)
        if table_only and not p.done:
            raise UsageError(f"no cell of {spec.name} has finished yet; nothing to tabulate")
        cores = available_cores()
        if spec.executor == "local" and spec.workers * p.threads > cores:
            log.warning("%d workers x %d threads > %d cores: the workers will fight over the "
                        "cores (set workers or threads lower)", spec.workers, p.threads, cores)
        log.info("%s: %d cells (%d finished earlier, skipped), %d to run on %s, %d at a time, "
                 "%d torch threads each", spec.name, len(p.cells), len(p.done), len(p.jobs),
                 spec.executor, spec.workers, p.threads)
        failed: list[str] = []
        records = dict(p.done)
        bar = tqdm(total=len(p.cells), initial=len(p.done), desc=f"sweep {spec.name}",
                   unit="study", disable=not progress)

        def on_done(job: CellJob, result: dict | BaseException) -> None:
            bar.update(1)
            if isinstance(result, BaseException):
                last = (str(result).strip().splitlines() or [type(result).__name__])[-1]
                failed.append(f"{job.label} ({last})")
                log.error("cell %s failed: %s", job.label, last)
                return
            records[job.label] = result
            log.info("cell %s finished in %.0f s", job.label, result["seconds"])

        try:
            EXECUTORS[spec.executor]([] if table_only else p.jobs, out / "jobs", spec.workers,
                                     spec.timeout_min, on_done, slurm=spec.slurm,
                                     name=spec.name)
        finally:
            bar.close()
        if failed:
            raise UsageError(f"{len(failed)} of {len(p.cells)} cells failed: "
                             f"{'; '.join(failed)}; their logs are in {out / 'jobs'}; a rerun "
                             "runs only the unfinished cells")
        rows = []
        for c in p.cells:
            if c.label not in records:  # table_only: not finished yet
                continue
            run_dir = c.run_dir(spec, p.threads)
            summary = json.loads((run_dir / "summary.json").read_text())
            rows.append({"label": c.label, "sets": c.sets, "run_dir": run_dir,
                         "summary": summary, "record": records[c.label],
                         "skipped": c.label in p.done})
        spec_dict = dataclasses.asdict(spec)
        missing = [c.label for c in p.cells if c.label not in records]
        table.write(out, spec_dict, spec.study, columns, table.rows(spec.study, columns, rows),
                    missing)
    return out
