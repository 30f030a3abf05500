"""The fault table: every fault-injection case against the real CLIs, as markdown.

    python analyses/fault_table.py [--out runs/fault_table.md] [--work DIR] [CASE ...]

Runs the cases of ``tests/storage/faults.py`` (the same code ``tests/storage/test_faults.py``
asserts on) and writes one row per fault: recovered, numbers identical, nothing lost.
Needs root for the tmpfs mounts of the full/read-only rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.storage.faults import CASES, Lab, Row, table  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cases", nargs="*", default=list(CASES), help=f"of {list(CASES)}")
    p.add_argument("--out", default="runs/fault_table.md")
    p.add_argument("--work", default=None, help="scratch dir (default: a temp dir)")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="faults-"))
    lab = Lab(work)
    rows, t0 = [], time.time()
    for name in args.cases:
        t = time.time()
        try:
            rows += CASES[name](lab)
        except Exception as e:  # noqa: BLE001 - a crashed case is a failed row, not no table
            rows.append(Row(f"{name} (the case crashed)", False, False, False,
                            f"{type(e).__name__}: {e}"))
        print(f"{name}: {time.time() - t:.0f} s", file=sys.stderr)
    ok = sum(r.ok for r in rows)
    text = (f"# Fault table\n\n{ok}/{len(rows)} cases pass; {time.time() - t0:.0f} s; "
            f"`python analyses/fault_table.py` (scratch: {work}).\n\n{table(rows)}\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
