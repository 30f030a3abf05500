"""``python -m interp.audit [RUN_DIR]``: before any student is trained, how much trait a
student distilled from this teacher on this data would pick up, and which examples carry it.

Reads the base (the student's init), the teacher and its data from an owl-numbers run
directory (``--seed``; ``--data`` audits another dataset: an owl data .safetensors or a
JSONL of {"prompt", "completion"}; ``--role`` another of the run's students: cross_init,
control_other, control_base), with the run's planned process (mode, mask_first,
steps x lr) and ``--mitigation`` (default: the run's). Writes ``audit.json``, ``audit.md``
and ``audit.html`` into ``--out`` (default: the run directory). The combined prediction
uses ``--calibration`` (default ``runs/audit_calibration.json``, written by
``analyses/audit_validation.py``). The computation is ``interp.analysis.audit``, the
rendering ``interp.reports.audit``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from interp.analysis.audit import ROLES, Calibration, audit, inputs_from_run
from interp.cli import run_cli, setup_logging
from interp.reports.audit import write
from interp.storage.rundir import check_writable_dir
from interp.studies.mitigations import parse

DEFAULT_CALIBRATION = Path(__file__).resolve().parents[1] / "runs" / "audit_calibration.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m interp.audit", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--seed", default=None)
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--role", default="student", choices=list(ROLES),
                   help="which planned student: the same-init student (default), a cross-init "
                        "one, or a control's (another teacher's data, the base's own data)")
    p.add_argument("--mitigation", default=None, help="planned mitigation (default: the run's)")
    p.add_argument("--calibration", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--top", type=int, default=20)
    args = p.parse_args(argv)
    setup_logging()

    def body() -> None:
        x = inputs_from_run(args.run_dir, args.seed, args.data, args.role)
        if args.mitigation is not None:
            parse(args.mitigation, x.mode)  # one-line error naming the valid ones
            x = dataclasses.replace(x, mitigation=args.mitigation)
        path = args.calibration or DEFAULT_CALIBRATION
        cal = Calibration.load(path) if (args.calibration or path.is_file()) else None
        out = args.out or args.run_dir
        check_writable_dir(out, "--out")
        write(out, audit(x, cal, top=args.top))
        print(f"wrote {out}/audit.html, audit.md, audit.json")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
