"""``python -m benchmarks``: every benchmark row, one markdown table, BENCHMARKS.md.

    python -m benchmarks [--reps 5] [--only ROW,ROW [--merge]] [--quick] [--out PATH]
                         [--align-run DIR]

A full run (all rows, not --quick) writes BENCHMARKS.md at the repository root; --quick
(2 repetitions, smaller sizes, a smoke test) or --only writes nothing unless --out is given;
--only ROWS --merge re-measures those rows into BENCHMARKS.md (the header says which, when).
The toolkit's own progress bars are silenced; each row shows one bar over its repetitions.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    # before tqdm is imported: keep the row bars unless the user silenced tqdm, drop the rest
    show = os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")
    os.environ["TQDM_DISABLE"] = "1"
    os.environ.setdefault("WANDB_MODE", "disabled")
    from benchmarks import (
        align,
        attribution,
        capture,
        coldstart,
        common,
        contention,
        digits,
        kernels,
        memory,
        pretrain,
        recorder,
        sae,
        sweep,
    )
    from benchmarks.table import report

    common.SHOW_PROGRESS = show
    rows = {r.name: r for r in (pretrain.ROW, pretrain.STACKED)}
    rows.update({m.ROW.name: m.ROW for m in (contention, recorder, attribution, digits, sweep,
                                             align, capture, sae, memory)})
    rows.update({r.name: r for r in kernels.ROWS})
    rows.update({r.name: r for r in coldstart.ROWS})  # one cold demo, read by every row
    p = argparse.ArgumentParser(prog="python -m benchmarks",
                                description="Run the benchmark rows; print the markdown table.")
    p.add_argument("--reps", type=int, default=None, help="paired repetitions (default 5; "
                   "2 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke test: 2 reps, smaller sizes")
    p.add_argument("--only", default="", help=f"comma-separated rows: {','.join(rows)}")
    p.add_argument("--out", type=Path, default=None, help="write the report here")
    p.add_argument("--merge", action="store_true", help="with --only: put the measured rows "
                   "into BENCHMARKS.md (replacing rows of the same name), noting when")
    p.add_argument("--align-run", type=Path, default=None,
                   help="run directory for the memory row (default: the align row's tiny run)")
    args = p.parse_args(argv)
    only = [r for r in args.only.split(",") if r]
    unknown = [r for r in only if r not in rows]
    if unknown:
        p.error(f"unknown row(s) {', '.join(unknown)}; valid rows: {', '.join(rows)}")
    if args.align_run is not None and not (args.align_run / "artifacts.json").is_file():
        p.error(f"{args.align_run} has no artifacts.json; pass a run directory")
    reps = args.reps or (2 if args.quick else 5)
    command = "python -m benchmarks" + "".join(f" {a}" for a in (argv or sys.argv[1:]))

    results = []
    with tempfile.TemporaryDirectory(prefix="benchmarks-") as tmp:
        ctx = common.Context(reps, args.quick, Path(tmp), args.align_run)
        for name, row in rows.items():
            if only and name not in only:
                continue
            try:
                results.append((row, row.run(ctx)))
            except Exception as e:  # one broken row must not lose the others' minutes
                traceback.print_exc()
                results.append((row, e))
    text = report(command, reps, args.quick, results)
    print(text)
    out = args.out or (ROOT / "BENCHMARKS.md" if not args.quick and not only else None)
    if args.merge and only and not args.quick:
        from benchmarks.table import merge

        out = args.out or ROOT / "BENCHMARKS.md"
        text = merge(out.read_text(), text)
    if out is not None:
        write_atomic(out, text)
        print(f"wrote {out}", file=sys.stderr)
    return int(any(isinstance(m, BaseException) for _, m in results))


if __name__ == "__main__":
    sys.exit(main())
