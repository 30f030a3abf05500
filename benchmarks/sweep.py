"""A sweep of small studies on two workers (one torch thread each) vs one worker (all cores).

    python -m benchmarks.sweep [--reps 3] [--cells 4]

The sweep: digits-aux, ``cells`` cells (``hidden`` 64, 96, ...), 2 seeds each, a reduced
schedule; each run cold (fresh temporary cache and output) through ``interp.sweeps.run_sweep``
on the local executor, so the time includes each worker process's start. Threads follow the
sweep's rule: cores // workers.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import Context, Measured, Row, paired
from interp import available_cores

SETS = ("student_steps=300", "teacher_steps=150", "checkpoint_every=150")
QUICK_SETS = ("student_steps=40", "teacher_steps=20", "checkpoint_every=20")


def timed(workers: int, cells: int, sets: tuple[str, ...]) -> float:
    from interp.storage.store import Store
    from interp.sweeps.runner import run_sweep
    from interp.sweeps.spec import SweepSpec

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as d:
        spec = SweepSpec(study="digits-aux", name="bench", preset="small", set=sets, seeds=2,
                         grid={"hidden": tuple(64 + 32 * i for i in range(cells))},
                         out=str(Path(d) / "out"), workers=workers)
        t0 = time.perf_counter()
        run_sweep(spec, Store(Path(d) / "cache"), progress=False)
        return time.perf_counter() - t0


def measure(reps: int, cells: int = 4, quick: int = 0) -> Measured:
    sets = QUICK_SETS if quick else SETS
    one, two = paired(reps, "sweep", lambda: timed(1, cells, sets),
                      lambda: timed(2, cells, sets))
    return Measured(
        one, two, "s", speedup=True,
        note=f"digits-aux preset small with {' '.join(sets)}, {cells} cells (hidden 64, 96, "
             f"...), 2 seeds each, cold; local executor; {available_cores()} cores: one worker "
             f"with {available_cores()} threads vs two with {max(1, available_cores() // 2)}.")


def run(ctx: Context) -> Measured:
    return measure(ctx.reps, cells=2 if ctx.quick else 4, quick=int(ctx.quick))


ROW = Row("sweep", "sweep of small studies: two workers vs one worker", "one / two",
          (">=", 1.7), run)


def main() -> None:
    from benchmarks.table import standalone

    standalone(ROW, measure, cells=4, quick=0)


if __name__ == "__main__":
    main()
