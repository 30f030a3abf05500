"""``python -m interp.fingerprint [RUN_DIR]``: where the teacher's trait lives in the student.

With no argument it runs (or reuses) the default owl-numbers study. Writes
``fingerprint.json``, ``fingerprint.md`` and ``fingerprint.html`` beside the run (and adds
a fingerprint section to ``align.html`` when the run has one), with a "Circuit" section
(``interp.analysis.circuits``: per-head and per-MLP patching, attribution and path patching,
centred DLA, logit lens, number tokens, the entanglement test) unless ``--no-circuit``. The
computation is ``interp.analysis.fingerprint``, the rendering ``interp.reports.fingerprint``.
"""

from __future__ import annotations

import argparse
import sys

from interp.analysis.fingerprint import FingerprintConfig, analyse
from interp.cli import run_cli, setup_logging
from interp.reports.fingerprint import write
from interp.storage.rundir import run_lock
from interp.studies.runner import run_dir_or_default


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m interp.fingerprint",
                                description=__doc__.split("\n")[0])
    p.add_argument("run_dir", nargs="?", default=None)
    p.add_argument("--ks", type=int, nargs="+", default=list(FingerprintConfig.ks),
                   help="candidate numbers of features to ablate; k is chosen among them on "
                   "the select prompts, every k is measured on the held-out prompts")
    p.add_argument("--no-circuit", action="store_true",
                   help="leave out the circuit analysis (heads, MLPs, paths, number tokens; "
                   "the report's Circuit section)")
    p.add_argument("--sae-data", choices=("base", "base+teachers"),
                   default=FingerprintConfig.sae_data)
    args = p.parse_args(argv)
    setup_logging()

    def body() -> None:
        fcfg = FingerprintConfig(ks=tuple(args.ks), sae_data=args.sae_data,
                                 circuit=not args.no_circuit)  # checks --ks
        run_dir = run_dir_or_default(args.run_dir)
        with run_lock(run_dir):
            write(run_dir, analyse(run_dir, fcfg))
        print(f"wrote {run_dir}/fingerprint.json, fingerprint.md, fingerprint.html")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
