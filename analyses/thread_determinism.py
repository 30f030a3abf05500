"""Do a study's numbers depend on the torch thread count? Runs owl-numbers (preset tiny,
2 seeds) with OMP_NUM_THREADS=1 and then 2, one after the other, each in its own cache,
and compares every rate in the two summaries.

    python analyses/thread_determinism.py [--work DIR]
    python analyses/thread_determinism.py --compare RUN_1THREAD RUN_2THREADS

The answer decides how the store handles threads: the thread count is part of every
entry's key (``interp.storage.store``), because the numbers differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def compare(a: Path, b: Path) -> str:
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (a, b))
    trait = sa["trait"]
    lines = ["| rates | role | 1 thread (per seed) | 2 threads (per seed) | equal |",
             "|---|---|---|---|---|"]
    differ = 0
    for key in ("rates", "sampled_rates"):
        for role in sa[key]:
            x, y = sa[key][role][trait], sb[key][role][trait]
            differ += x != y
            lines.append(f"| {key} | {role} | {', '.join(f'{v:.6f}' for v in x)} | "
                         f"{', '.join(f'{v:.6f}' for v in y)} | {'yes' if x == y else 'NO'} |")
    same = (a / "summary.json").read_bytes() == (b / "summary.json").read_bytes()
    return "\n".join(lines) + f"\n\n{differ} rows differ; summaries byte-identical: {same}\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default=None)
    p.add_argument("--compare", nargs=2, type=Path, default=None)
    args = p.parse_args()
    if args.compare:
        print(compare(*args.compare))
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="threads-"))
    runs = []
    for t in (1, 2):
        run = work / f"run{t}"
        env = {**os.environ, "OMP_NUM_THREADS": str(t), "INTERP_CACHE": str(work / f"cache{t}"),
               "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "interp.study", "run", "owl-numbers", "--preset",
                        "tiny", "--seeds", "2", "--out", str(run)], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        print(f"threads={t}: {time.time() - t0:.0f} s", file=sys.stderr)
        runs.append(run)
    print(compare(*runs))


if __name__ == "__main__":
    main()
