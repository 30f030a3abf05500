"""``python -m interp.sweep``: run a grid of studies, skip the finished ones, write a table.

    python -m interp.sweep SPEC.toml [--executor local|slurm] [--workers N] [--threads T]
                           [--seeds N] [--preset P] [--set key=value ...] [--out DIR]
                           [--dry-run | --table-only]
    python -m interp.sweep --list-metrics [STUDY]

SPEC is a TOML (or YAML) file (examples in ``sweeps/``); the work is in ``interp.sweeps``;
this module only parses arguments.
"""

from __future__ import annotations

import argparse
import sys

from interp.cli import run_cli, setup_logging
from interp.studies.registry import studies
from interp.sweeps import table
from interp.sweeps.runner import plan, run_sweep
from interp.sweeps.spec import EXECUTORS, load_spec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m interp.sweep",
                                description=__doc__.split("\n")[0])
    p.add_argument("spec", nargs="?", help="sweep spec (.toml, .yaml)")
    p.add_argument("--executor", choices=EXECUTORS, default=None)
    p.add_argument("--workers", type=int, default=None,
                   help="studies at a time (local processes; Slurm array concurrency)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per worker (default: cores // workers; Slurm: "
                        "cpus_per_task)")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--preset", default=None)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="applied to every cell, after the spec's own")
    p.add_argument("--out", default=None, help="output directory (default runs/sweeps/NAME)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the cells and which are finished; run nothing")
    p.add_argument("--table-only", action="store_true",
                   help="run nothing; write the table of the cells finished so far")
    p.add_argument("--list-metrics", nargs="?", const="", default=None, metavar="STUDY")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    setup_logging()

    def body() -> None:
        if args.list_metrics is not None:
            for name in [args.list_metrics] if args.list_metrics else list(studies()):
                for m, metric in table.METRICS.get(name, {}).items():
                    print(f"{name:12s} {m:24s} {metric.what}")
            return
        if not args.spec:
            p.error("give a sweep spec (a .toml file; see sweeps/)")
        spec = load_spec(args.spec, executor=args.executor, workers=args.workers,
                         threads=args.threads, seeds=args.seeds, preset=args.preset,
                         out=args.out, set=args.sets)
        if args.dry_run:
            pl = plan(spec)
            print(f"{spec.name}: {len(pl.cells)} cells, {pl.threads} torch threads per worker, "
                  f"{spec.workers} at a time on {spec.executor}")
            for c in pl.cells:
                state = "finished" if c.label in pl.done else "to run"
                print(f"  {state:9s} {c.label}  -> {c.run_dir(spec, pl.threads)}")
            return
        out = run_sweep(spec, progress=not args.no_progress, table_only=args.table_only)
        print(f"wrote {out}/sweep.md, sweep.json, sweep.html")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
