"""Compare the JSON results of two run directories field by field.

    python analyses/compare_runs.py RUN_A RUN_B [--files summary.json align.json fingerprint.json]

For each file: identical bytes, or the number of differing leaves, the largest relative
difference of a numeric leaf, and the names of the fields that differ. Used to show that a
refactor changed no number (and by how little, where floating-point order moved).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def leaves(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from leaves(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, x


def compare(a: Path, b: Path) -> str:
    if a.read_bytes() == b.read_bytes():
        return "identical bytes"
    la, lb = dict(leaves(json.loads(a.read_text()))), dict(leaves(json.loads(b.read_text())))
    if la.keys() != lb.keys():
        only = sorted(la.keys() ^ lb.keys())
        return f"different fields: {len(only)} (e.g. {only[:5]})"
    diff = [(p, la[p], lb[p]) for p in la if la[p] != lb[p]]
    num = [abs(x - y) / max(abs(x), abs(y), 1e-300) for _, x, y in diff
           if isinstance(x, float | int) and isinstance(y, float | int)]
    names = sorted({p.split(".")[-1].split("[")[0] for p, _, _ in diff})
    worst = f"{max(num):.2g}" if num else "-"
    return f"{len(diff)} leaves differ, max relative difference {worst}, fields: {names}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--files", nargs="+",
                   default=["summary.json", "align.json", "fingerprint.json"])
    args = p.parse_args(argv)
    for name in args.files:
        fa, fb = args.a / name, args.b / name
        status = compare(fa, fb) if fa.is_file() and fb.is_file() else "missing in one run"
        print(f"{name}: {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
