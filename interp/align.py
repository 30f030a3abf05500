"""``python -m interp.align [RUN_DIR]``: how each student's movement lines up with the teacher.

With no argument it runs (or reuses from the cache) the default owl-numbers study and
reports on it; given a run directory (digits-aux or owl-numbers) it reports on that run.
Writes ``align.json``, ``align.md`` and a self-contained ``align.html`` beside the run.
The computation is ``interp.analysis.align``, the rendering ``interp.reports.align``.
"""

from __future__ import annotations

import argparse
import sys

from interp.analysis.align import analyse
from interp.cli import run_cli, setup_logging
from interp.reports.align import write
from interp.storage.rundir import run_lock
from interp.studies.runner import run_dir_or_default


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m interp.align", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", nargs="?", default=None)
    args = p.parse_args(argv)
    setup_logging()

    def body() -> None:
        run_dir = run_dir_or_default(args.run_dir)
        with run_lock(run_dir):
            write(run_dir, analyse(run_dir))
        print(f"wrote {run_dir}/align.html, align.md, align.json")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
