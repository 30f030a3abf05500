"""digits-aux wall time: all seeds batched (the study) vs one seed after another.

    python -m benchmarks.digits [--seeds 10] [--sequential]

Each timing is a cold run (a fresh temporary cache), including data loading and all
three students per seed; --sequential also times the same seeds one process-call each.
"""

from __future__ import annotations

import argparse
import statistics as st
import tempfile
import time

from interp.store import Store
from interp.study import run_study


def timed(seeds: int, seed_start: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        _, s = run_study("digits-aux", seeds, seed_start, out=f"{d}/run", store=Store(f"{d}/c"))
        return time.perf_counter() - t0, s


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--sequential", action="store_true")
    args = p.parse_args()
    t, s = timed(args.seeds, 0)
    print("| run | seconds | same-init acc | cross-init acc | teacher acc |")
    print("|---|---|---|---|---|")
    print(f"| {args.seeds} seeds batched | {t:.1f} | {st.mean(s['student_acc']):.3f} | "
          f"{st.mean(s['cross_init_acc']):.3f} | {st.mean(s['teacher_acc']):.3f} |")
    if args.sequential:
        times, accs = [], []
        for seed in range(args.seeds):
            ti, si = timed(1, seed)
            times.append(ti)
            accs.append(si["student_acc"][0])
        print(f"| {args.seeds} seeds one after another | {sum(times):.1f} | "
              f"{st.mean(accs):.3f} | - | - |")
        print(f"batched speed-up: {sum(times) / t:.1f}x")


if __name__ == "__main__":
    main()
