"""owl-numbers: the circuit analysis alone (no SAEs), on a run directory or the study it
names.

    python analyses/owl_circuits.py [RUN_DIR] [--preset tiny] [--seeds 3] [--out DIR]

Runs (or, from a warm cache, loads) the owl-numbers study when no RUN_DIR is given, then
``interp.analysis.circuits.analyse`` with the default ``CircuitConfig`` (the one
``python -m interp.fingerprint`` puts in its report's Circuit section), and writes
``circuits.json``, ``circuits.md`` and ``circuits.html`` (the Circuit section alone) into
``--out`` (default: the run directory). Prints the must-show numbers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from interp.analysis.circuits import CircuitConfig, analyse
from interp.cli import setup_logging
from interp.reports.fingerprint import circuit_finding, circuit_markdown, circuit_sections
from interp.reports.html import write_html
from interp.storage.store import write_json, write_text
from interp.studies.runner import run_study


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir", nargs="?", default=None)
    p.add_argument("--preset", default=None)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    setup_logging()
    t0 = time.time()
    run_dir = Path(args.run_dir) if args.run_dir else run_study(
        "owl-numbers", seeds=args.seeds, preset=args.preset)[0]
    result = analyse(run_dir, CircuitConfig())
    out = Path(args.out) if args.out else run_dir
    write_json(out / "circuits.json", result)
    write_text(out / "circuits.md", f"# Circuits: {result['trait']} ({run_dir})\n\n"
               + circuit_markdown(result))
    write_html(out / "circuits.html", f"circuits: {result['trait']}", circuit_sections(result))
    print(circuit_finding(result))
    print(f"wrote {out}/circuits.json, circuits.md, circuits.html ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
