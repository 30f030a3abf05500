"""digits-aux: the batched student training's FLOP/s, and its wall time against one seed
after another.

    python -m benchmarks.digits [--seeds 10] [--sequential]

The benchmark row (``python -m benchmarks --only digits``) measures the study's stacked
student step in FLOP/s against the float32 matmul peak. Run as a script, it times a cold
study (a fresh temporary cache, data loading and all three students per seed); with
--sequential also the same seeds one call each.
"""

from __future__ import annotations

import argparse
import statistics as st
import tempfile
import time

from benchmarks.common import Context, Measured, Row, paired
from interp.storage.store import Store
from interp.studies.runner import run_study


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

    from interp.studies.digits import adam, distill_loss, forward, init_params

    p = {k: v.requires_grad_(True) for k, v in
         init_params(list(range(models)), 64, hidden, 13, "kaiming").items()}
    t = {k: v.detach() for k, v in init_params(list(range(models)), 64, hidden, 13,
                                               "kaiming").items()}
    opt = adam(p, 1e-3)
    x = torch.rand(models, batch, 64) * 2 - 1
    for i in range(steps + 3):  # 3 warm-up steps
        if i == 3:
            t0 = time.perf_counter()
        loss = distill_loss(forward(p, x), forward(t, x).detach(), (10, 13))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps * 1000


def step_flops(models: int, hidden: int = 256, batch: int = 128, d_in: int = 64,
               d_out: int = 13) -> float:
    """FLOPs of one step of ``step_ms``: per model, the student's forward and backward
    (6 per weight per example) and the teacher's forward (2), biases ignored."""
    weights = d_in * hidden + hidden * hidden + hidden * d_out
    return models * batch * 8 * weights


def measure(reps: int, seeds: int = 10, steps: int = 30) -> Measured:
    """The study's batched student step (all seeds' students stacked) in FLOP/s against the
    float32 matmul peak, measured back to back."""
    from benchmarks.pretrain import peak_flops

    models = 3 * seeds
    step_ms(models, steps=3)  # warm-up
    times: list[float] = []

    def achieved() -> float:
        times.append(step_ms(models, steps=steps))
        return step_flops(models) / (times[-1] / 1000) / 1e9

    peak, got = paired(reps, "digits", lambda: peak_flops() / 1e9, achieved)
    one = step_ms(3, steps=steps)
    return Measured(peak, got, "GFLOP/s",
                    extra=f"{st.median(times):.1f} ms per step",
                    note=f"digits-aux's student step (interp.studies.digits forward + "
                         f"distill_loss + Adam) for {seeds} seeds x 3 students = {models} "
                         f"stacked MLPs (64-256-256-13), batch 128, {steps} steps per rep; "
                         "FLOPs = 8 per weight per example (student forward and backward, "
                         "teacher forward). Baseline = float32 torch.mm 2048 x 2048 peak. "
                         f"One seed's 3 students alone: {one:.1f} ms per step "
                         f"({step_flops(3) / (one / 1000) / 1e9:.0f} GFLOP/s): batching is "
                         "what fills the machine. Reframed from wall time against one seed "
                         "after another, which two cores bound (`python -m benchmarks.digits "
                         "--sequential` still prints that comparison).")


def run(ctx: Context) -> Measured:
    return measure(ctx.reps, 3 if ctx.quick else 10, 10 if ctx.quick else 30)


ROW = Row("digits", "digits-aux batched student training FLOP/s vs float32 matmul peak",
          "utilisation", (">=", 0.30), run)


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
