"""digits-aux wall time: all seeds batched (the study) vs one seed after another.

    python -m benchmarks.digits [--seeds 10] [--sequential]

Each timing is a cold run (a fresh temporary cache), including data loading and all
three students per seed; --sequential also times the same seeds one call each. The
benchmark row (``python -m benchmarks --only digits``) pairs the two with fewer steps.
"""

from __future__ import annotations

import argparse
import statistics as st
import tempfile
import time

from benchmarks.common import Context, Measured, Row, paired
from interp.storage.store import Store
from interp.studies.runner import run_study

# the row's reduced schedule, so that 5 paired repetitions fit the time budget
ROW_SETS = ["student_steps=200", "teacher_steps=100", "checkpoint_every=100"]
QUICK_SETS = ["student_steps=20", "teacher_steps=10", "checkpoint_every=10"]


def timed(seeds: int, seed_start: int, sets: list[str] | None = None) -> tuple[float, dict]:
    """(wall seconds, summary) of one cold run_study in a fresh temporary cache."""
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        _, s = run_study("digits-aux", seeds, seed_start, out=f"{d}/run", sets=sets,
                         store=Store(f"{d}/c"))
        return time.perf_counter() - t0, s


def sequential(seeds: int, sets: list[str] | None = None) -> float:
    return sum(timed(1, s, sets)[0] for s in range(seeds))


def step_ms(models: int, steps: int = 30, hidden: int = 256, batch: int = 128) -> float:
    """Milliseconds per student training step for ``models`` stacked MLPs (the study's
    inner loop: forward, KL on the aux logits, backward, Adam)."""
    import torch

    from interp.studies.digits import distill_loss, forward, init_params

    p = {k: v.requires_grad_(True) for k, v in
         init_params(list(range(models)), 64, hidden, 13, "kaiming").items()}
    t = {k: v.detach() for k, v in init_params(list(range(models)), 64, hidden, 13,
                                               "kaiming").items()}
    opt = torch.optim.Adam(p.values(), lr=1e-3)
    x = torch.rand(models, batch, 64) * 2 - 1
    for i in range(steps + 3):  # 3 warm-up steps
        if i == 3:
            t0 = time.perf_counter()
        loss = distill_loss(forward(p, x), forward(t, x).detach(), (10, 13))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps * 1000


def measure(reps: int, seeds: int = 10, sets: list[str] | None = None) -> Measured:
    timed(1, 0, QUICK_SETS)  # warm-up: first-call imports and data loading
    # what bounds the speed-up: does a step's cost grow with the number of stacked models?
    one, many = step_ms(3), step_ms(3 * seeds)
    seq, vec = paired(reps, "digits", lambda: sequential(seeds, sets),
                      lambda: timed(seeds, 0, sets)[0])
    return Measured(seq, vec, "s", speedup=True,
                    note=f"digits-aux, {seeds} seeds, --set {' '.join(sets or [])}; each run "
                         "cold in a fresh Store(tmpdir); vectorised = run_study(seeds="
                         f"{seeds}), sequential = {seeds} calls of run_study(seeds=1, "
                         "seed_start=s); includes data loading and report writing. "
                         f"Per training step: {one:.1f} ms for 3 stacked models (one seed's "
                         f"students), {many:.1f} ms for {3 * seeds} ({many / one:.1f}x for "
                         f"{seeds}x the models): the step is compute-bound, so batching can "
                         "only remove per-call overhead.")


def run(ctx: Context) -> Measured:
    return measure(ctx.reps, 3 if ctx.quick else 10, QUICK_SETS if ctx.quick else ROW_SETS)


ROW = Row("digits", "digits-aux, all seeds trained vectorised vs one seed after another",
          "sequential / vectorised", (">=", 5.0), run)


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
