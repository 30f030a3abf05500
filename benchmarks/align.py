"""The align report cold (seed reports and activations rebuilt) vs warm (read from the store).

    python -m benchmarks.align [--reps 5] [--seeds 2]

Setup, once and untimed: the owl-numbers study, preset "tiny", in a temporary cache and
run directory. Each repetition removes the store's ``align/seed`` and ``activations``
entries, times the align report (analyse + write) cold, then again warm.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.common import Context, Measured, Row, paired, seconds
from interp.analysis import align
from interp.reports.align import write
from interp.storage.store import Store
from interp.studies.runner import run_study


def report(run_dir, store):
    """What ``python -m interp.align RUN_DIR`` does: analyse, then write the three files."""
    write(run_dir, align.analyse(run_dir, store))


COLD_KINDS = ("align/seed", "activations")


@functools.cache
def tiny_run(tmp: Path, seeds: int = 2) -> tuple[Path, Path]:
    """(run dir, cache root) of a tiny owl-numbers run built under ``tmp``, once per process."""
    print(f"building a tiny owl-numbers run (seeds: {seeds}; about 2 minutes, once)",
          file=sys.stderr)
    root = tmp / f"tiny-cache-{seeds}"
    run_dir, _ = run_study("owl-numbers", seeds=seeds, out=tmp / f"tiny-run-{seeds}",
                           preset="tiny", store=Store(root))
    return run_dir, root


def make_cold(root: Path) -> None:
    """Remove the entries a report builds, so the next one recomputes them."""
    for kind in COLD_KINDS:
        shutil.rmtree(root / kind, ignore_errors=True)


def measure(reps: int, run_dir: Path, root: Path) -> Measured:
    def cold() -> float:
        make_cold(root)
        return seconds(lambda: report(run_dir, Store(root)))

    c, w = paired(reps, "align", cold, lambda: seconds(lambda: report(run_dir, Store(root))))
    seeds = len(json.loads((run_dir / "artifacts.json").read_text())["seeds"])
    return Measured(c, w, "s", speedup=True,
                    note=f"analyse + write on a tiny owl-numbers run (seeds: {seeds}, "
                         "preset tiny, built once before the repetitions); cold = after "
                         f"removing the store's {' and '.join(COLD_KINDS)} entries, warm = "
                         "the same call again; both write align.json/.md/.html.")


def run(ctx: Context) -> Measured:
    return measure(ctx.reps, *tiny_run(ctx.tmp, 1 if ctx.quick else 2))


ROW = Row("align", "align report warm (store hits) vs cold (recomputed)", "cold / warm",
          (">=", 10.0), run)


def main() -> None:
    from benchmarks.table import table

    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--seeds", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(table([(ROW, measure(args.reps, *tiny_run(Path(tmp), args.seeds)))]))


if __name__ == "__main__":
    main()
