"""Base-model pretraining throughput (tokens/s) and FLOP utilisation against a matmul peak.

    python -m benchmarks.pretrain [--steps 30] [--reps 5]

The default owl-numbers model shape, batches of 64 from the synthetic corpus, an AdamW
step as in ``interp.lm.pretrain``. Each repetition measures the float32 matmul peak
(torch.mm of 2048 x 2048) and then the training rate, back to back.
"""

from __future__ import annotations

import statistics

import numpy as np
import torch
from transformer_lens import HookedTransformer

from benchmarks.common import Context, Measured, Row, paired, seconds
from interp.studies import lm
from interp.studies.world import Vocab, WorldConfig, corpus_batch


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


def measure(reps: int, steps: int = 30, batch: int = 64) -> Measured:
    vocab = Vocab()
    model = lm.build_model(lm.ModelConfig(), len(vocab), 64, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    rng = np.random.default_rng(0)
    batches = [corpus_batch(vocab, WorldConfig(), rng, batch) for _ in range(steps)]
    n_tokens = sum(int((b != vocab.pad).sum()) for b in batches)

    def train() -> None:
        for tokens in batches:
            loss = lm.next_token_loss(model(tokens), tokens, tokens != vocab.pad)
            opt.zero_grad()
            loss.backward()
            opt.step()

    train()  # warm-up (optimizer state, allocator)
    rates: list[float] = []

    def achieved() -> float:
        rates.append(n_tokens / seconds(train))
        return flops_per_token(model) * rates[-1] / 1e9

    peak, got = paired(reps, "pretrain", lambda: peak_flops() / 1e9, achieved)
    return Measured(
        peak, got, "GFLOP/s", extra=f"{statistics.median(rates):,.0f} tok/s",
        note=f"{steps} steps of batch {batch} per rep, batches drawn before the clock starts; "
             "tokens = non-pad tokens (padded positions are computed but not counted). "
             "Achieved FLOP/s = 6 N tok/s + 6 d_model d_vocab tok/s, N = non-embedding "
             f"parameters ({non_embedding(model):,}), attention "
             "scores ignored; baseline = float32 torch.mm 2048 x 2048 peak, 2 n^3 / t, best "
             "of 3 calls.")


def run(ctx: Context) -> Measured:
    return measure(ctx.reps, steps=5 if ctx.quick else 30)


ROW = Row("pretrain", "base-model pretraining FLOP/s (tokens/s) vs float32 matmul peak",
          "utilisation", None, run)


def main() -> None:
    from benchmarks.table import standalone

    standalone(ROW, measure, steps=30)


if __name__ == "__main__":
    main()
