"""Peak resident memory of ``python -m interp.align RUN_DIR`` vs importing the toolkit.

    python -m benchmarks.memory RUN_DIR [--reps 5]

Each measurement runs the command under a small Python wrapper whose only child it is,
so the wrapper's ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is that command's peak RSS.
``INTERP_CACHE`` is passed through: use the cache the run was built with.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.align import make_cold, tiny_run
from benchmarks.common import Context, Measured, Row, paired

WRAPPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
           "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
BASELINE = [sys.executable, "-c", "import interp.analysis.align, interp.studies.owl"]


def peak_rss_mib(cmd: list[str], env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], env=env, capture_output=True,
                         text=True, check=True)
    rc, kib = map(int, out.stdout.strip().splitlines()[-1].split())
    if rc:
        raise RuntimeError(f"{' '.join(cmd)} exited {rc}: {out.stderr.strip()[-500:]}")
    return kib / 1024  # Linux reports ru_maxrss in KiB


def measure(reps: int, run_dir: Path, cache: Path | None = None, label: str = "") -> Measured:
    """``cache``: the run's store, emptied of report entries before each rep (cold report);
    None: the ambient INTERP_CACHE, left as it stands. ``label`` names the run in the note."""
    env = {**os.environ, "TQDM_DISABLE": "1", "WANDB_MODE": "disabled"}
    if cache is not None:
        env["INTERP_CACHE"] = str(cache)
    cmd = [sys.executable, "-m", "interp.align", str(run_dir)]

    def report() -> float:
        if cache is not None:
            make_cold(cache)
        return peak_rss_mib(cmd, env)

    base, peak = paired(reps, "memory", lambda: peak_rss_mib(BASELINE, env), report)
    where = ("the run's own" if cache is not None
             else os.environ.get("INTERP_CACHE", "./cache (default)"))
    state = ("cold: the store's align/seed and activations entries removed before each rep"
             if cache is not None else "the cache as it stands (not cleared)")
    return Measured(base, peak, "MiB",
                    note=f"run measured: {label or run_dir}; INTERP_CACHE: "
                         f"{where}, {state}; baseline = `python "
                         "-c 'import interp.analysis.align, interp.studies.owl'`; peak RSS via "
                         "getrusage(RUSAGE_CHILDREN).ru_maxrss of a one-child wrapper.")


def run(ctx: Context) -> Measured:
    if ctx.align_run is not None:
        return measure(ctx.reps, ctx.align_run)
    seeds = 1 if ctx.quick else 2
    run_dir, root = tiny_run(ctx.tmp, seeds)
    return measure(ctx.reps, run_dir, root, f"the align row's tiny owl-numbers run (preset "
                   f"tiny, seeds: {seeds}, in a temporary directory)")


ROW = Row("memory", "peak RSS of `python -m interp.align RUN_DIR` vs importing the toolkit",
          "align / import", None, run)


def main() -> None:
    from benchmarks.table import table

    p = argparse.ArgumentParser()
    p.add_argument("run_dir", type=Path)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    print(table([(ROW, measure(args.reps, args.run_dir))]))


if __name__ == "__main__":
    main()
