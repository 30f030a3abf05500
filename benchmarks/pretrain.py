"""Base-model pretraining throughput (tokens/s) and FLOP utilisation against a matmul peak.

    python -m benchmarks.pretrain [--steps 30] [--batch 64] [--reps 5] [--compile 1]

The default owl-numbers model shape and the study's own pretraining loop
(``interp.studies.lm.pretrain_stack``, batches of 64 from the synthetic corpus), here with
two bases stacked in one process at the default thread count against that count's peak.
(``make demo`` trains each base alone in a one-thread worker; the ``stage:pretraining`` row
reports that rate against the one-thread peak.) Each repetition measures the float32 matmul
peak (torch.mm of 2048 x 2048) and then the training rate, back to back. ``--compile 1``:
the same loop with the stacked forward (``stack.residual``) under
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


def run(ctx: Context) -> Measured:
    return measure(ctx.reps, steps=5 if ctx.quick else 30)


ROW = Row("pretrain", "base-model pretraining FLOP/s (tokens/s) vs float32 matmul peak",
          "utilisation", (">=", 0.35), run)


def main() -> None:
    from benchmarks.table import standalone

    standalone(ROW, measure, steps=30, batch=64, compile=0)


if __name__ == "__main__":
    main()
