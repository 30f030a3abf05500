"""Base-model pretraining FLOP utilisation against the float32 matmul peak: two rows.

    python -m benchmarks.pretrain [--steps 30] [--batch 64] [--reps 5] [--stacked 1]
        [--compile 1]

``pretrain`` (the target row) measures base pretraining as ``make demo`` runs it: the
study's own loop (``interp.studies.lm.pretrain_stack`` on one default owl-numbers base,
batches of 64 from the synthetic corpus) in one one-thread worker process per core, all
at once, each on its own base:

1. Start one spawned worker per available core (``interp.available_cores``), each at one
   torch thread; each warms up (3 steps) and waits.
2. Per repetition: the float32 matmul peak at the default thread count (all cores; the
   workers wait, idle), then every worker builds a fresh base and trains it ``steps``
   steps; each reports its non-pad tokens and its start and end time.
3. Achieved FLOP/s = the workers' FLOPs together over the wall time from the first start
   to the last end (not the sum of their rates, which would count a worker that ran alone
   as if the others ran beside it).

``pretrain_stacked`` (``--stacked 1``) is the same loop with the two bases stacked in one
process at the default thread count, the way a study with ``INTERP_WORKERS`` unset
pretrains several bases. ``--compile 1`` (stacked only): ``stack.residual`` under
``torch.compile(dynamic=True)`` (the packed row count varies per step), compilation in the
untimed warm-up and reported beside the rate.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch
from transformer_lens import HookedTransformer

from benchmarks.common import Context, Measured, Row, paired, seconds
from interp.studies import lm, stack
from interp.studies.world import Vocab, WorldConfig


def peak_flops(n: int = 2048, iters: int = 3) -> float:
    """float32 matmul FLOP/s: 2 n^3 over the fastest of ``iters`` timed torch.mm calls."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    return 2 * n**3 / min(seconds(lambda: torch.mm(a, b)) for _ in range(iters))


def non_embedding(model: HookedTransformer) -> int:
    return sum(p.numel() for name, p in model.named_parameters()
               if not name.startswith(("embed.", "pos_embed.", "unembed.")))


def flops_per_token(model: HookedTransformer) -> float:
    """6 N (non-embedding parameters, forward + backward) + 6 d_model d_vocab (unembedding)."""
    return 6 * non_embedding(model) + 6 * model.cfg.d_model * model.cfg.d_vocab


def measure(reps: int, steps: int = 30, batch: int = 64, compile: int = 0) -> Measured:
    """The study's own loop (``lm.pretrain_stack``, here a same-init and a cross-init base as
    one stack, corpus drawn on the fly, fused AdamW), ``steps`` steps per repetition."""
    vocab, world = Vocab(), WorldConfig()

    def models() -> list[HookedTransformer]:
        return [lm.build_model(lm.ModelConfig(), len(vocab), world.n_ctx, s) for s in (0, 1)]

    eager = stack.residual
    if compile:
        stack.residual = torch.compile(eager, dynamic=True)
    try:
        start = time.perf_counter()
        lm.pretrain_stack(models(), vocab, world, 10 if compile else 3, batch, 3e-3,
                          [0, 1])  # warm-up (and compilation)
        warm = time.perf_counter() - start
        out = _measure(reps, steps, batch, vocab, world, models)
    finally:
        stack.residual = eager
    if compile:
        out = dataclasses.replace(out, note=f"torch.compile(stack.residual, dynamic=True), "
                                  f"warm-up with compilation {warm:.0f} s; " + out.note)
    return out


def _measure(reps: int, steps: int, batch: int, vocab: Vocab, world: WorldConfig,
             models) -> Measured:
    rates: list[float] = []
    model = models()[0]

    def achieved() -> float:
        seen: list[int] = []
        ms = models()
        t = seconds(lambda: lm.pretrain_stack(ms, vocab, world, steps, batch, 3e-3, [0, 1],
                                              seen))
        rates.append(sum(seen) / t)
        return flops_per_token(model) * rates[-1] / 1e9

    peak, got = paired(reps, "pretrain", lambda: peak_flops() / 1e9, achieved)
    return Measured(
        peak, got, "GFLOP/s", extra=f"{statistics.median(rates):,.0f} tok/s",
        note=f"interp.studies.lm.pretrain_stack, 2 bases stacked (make demo trains each "
             "alone on a one-thread worker: the stage:pretraining row), "
             f"{steps} steps of batch {batch} each per rep, corpus drawn inside the timed "
             "loop; tokens = non-pad tokens (padded positions are computed but not counted). "
             "Achieved FLOP/s = 6 N tok/s + 6 d_model d_vocab tok/s, N = non-embedding "
             f"parameters ({non_embedding(model):,}), attention "
             "scores ignored; baseline = float32 torch.mm 2048 x 2048 peak, 2 n^3 / t, best "
             "of 3 calls.")


def _worker(seed: int, steps: int, batch: int, go, done) -> None:
    """One one-thread worker: warm up, then per ``go`` message pretrain a fresh base (seed
    ``seed``) ``steps`` steps and put (non-pad tokens, FLOPs per token, start, end)."""
    torch.set_num_threads(1)
    vocab, world = Vocab(), WorldConfig()

    def model() -> HookedTransformer:
        return lm.build_model(lm.ModelConfig(), len(vocab), world.n_ctx, seed)

    lm.pretrain_stack([model()], vocab, world, 3, batch, 3e-3, [seed])  # warm-up
    done.put(None)
    while go.get():
        m, seen = model(), []
        start = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
        lm.pretrain_stack([m], vocab, world, steps, batch, 3e-3, [seed], seen)
        done.put((seen[0], flops_per_token(m), start, time.perf_counter()))


def measure_workers(reps: int, steps: int = 30, batch: int = 64) -> Measured:
    """``make demo``'s pretraining: one base per one-thread worker, a worker per core, all
    at once (the module docstring, steps 1-3)."""
    import multiprocessing as mp

    from interp import available_cores, environ

    n = available_cores()
    ctx = mp.get_context("spawn")
    gos, done = [ctx.Queue() for _ in range(n)], ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(i, steps, batch, gos[i], done), daemon=True)
             for i in range(n)]
    # OpenMP sizes its pool from the environment at the child's start
    with environ(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1"):
        for proc in procs:
            proc.start()
    rates: list[float] = []
    try:
        for _ in range(n):
            done.get(timeout=600)  # every worker warmed up

        def achieved() -> float:
            for q in gos:
                q.put(True)
            got = [done.get(timeout=600) for _ in range(n)]
            wall = max(g[3] for g in got) - min(g[2] for g in got)
            rates.append(sum(g[0] for g in got) / wall)
            return sum(g[0] * g[1] for g in got) / wall / 1e9

        peak, flops = paired(reps, "pretrain", lambda: peak_flops() / 1e9, achieved)
    finally:
        for q in gos:
            q.put(False)
        for proc in procs:
            proc.join(timeout=60)
    model = lm.build_model(lm.ModelConfig(), len(Vocab()), WorldConfig().n_ctx, 0)
    return Measured(
        peak, flops, "GFLOP/s", extra=f"{statistics.median(rates):,.0f} tok/s",
        note=f"make demo's pretraining: interp.studies.lm.pretrain_stack on one base per "
             f"one-thread worker process, {n} workers (one per core) at once, {steps} steps "
             f"of batch {batch} each per rep, corpus drawn inside the timed loop; tokens = "
             "non-pad tokens of all workers over the wall time from the first worker's start "
             "to the last one's end. Achieved FLOP/s = 6 N tok/s + 6 d_model d_vocab tok/s, "
             f"N = non-embedding parameters ({non_embedding(model):,}), attention scores "
             f"ignored; baseline = float32 torch.mm 2048 x 2048 peak at {n} threads (every "
             "core), 2 n^3 / t, best of 3 calls, measured while the workers wait.")


def run(ctx: Context) -> Measured:
    return measure_workers(ctx.reps, steps=5 if ctx.quick else 30)


def run_stacked(ctx: Context) -> Measured:
    return measure(ctx.reps, steps=5 if ctx.quick else 30)


ROW = Row("pretrain", "base pretraining as make demo runs it (a one-thread worker per core, "
          "one base each) FLOP/s (tokens/s) vs float32 matmul peak of all cores",
          "utilisation", (">=", 0.35), run)
STACKED = Row("pretrain_stacked", "base pretraining, 2 bases stacked in one process at the "
              "default thread count, FLOP/s (tokens/s) vs float32 matmul peak",
              "utilisation", None, run_stacked)


def main() -> None:
    import argparse

    from benchmarks.table import table

    p = argparse.ArgumentParser(prog="python -m benchmarks.pretrain")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--stacked", type=int, default=0, help="1: the pretrain_stacked row")
    p.add_argument("--compile", type=int, default=0, help="1: compile the stacked forward "
                   "(with --stacked 1)")
    a = p.parse_args()
    if a.compile and not a.stacked:
        p.error("--compile 1 applies to the stacked row; add --stacked 1")
    if a.stacked:
        print(table([(STACKED, measure(a.reps, a.steps, a.batch, a.compile))]))
    else:
        print(table([(ROW, measure_workers(a.reps, a.steps, a.batch))]))


if __name__ == "__main__":
    main()
