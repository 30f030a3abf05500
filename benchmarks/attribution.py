"""Per-token attribution: one JVP per batch vs a per-example backward loop.

    python -m benchmarks.attribution [--batch 64] [--reps 5]

Uses the default owl-numbers model shape (2 layers, d_model 64, vocabulary 1,053, 40
positions) at random weights: the cost does not depend on the weights. Prints agreement
(max relative error) and the median time of each method over paired repetitions.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from interp import alignment as A
from interp import lm
from interp.world import Vocab


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    v = Vocab()
    model = lm.build_model(lm.ModelConfig(), len(v), 64, 0)
    theta0 = {k: t.detach() for k, t in model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    direction = {k: 1e-2 * torch.randn(t.shape, generator=g) for k, t in theta0.items()}
    tokens = torch.randint(len(v), (args.batch, 40), generator=g)
    fn = A.model_fn(model)

    def losses(p):  # [batch]: each sequence's next-token loss
        logits = fn(p, tokens)
        return torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none"
        ).view(args.batch, -1).mean(1)

    def per_example():
        return torch.stack([sum((gi * direction[k]).sum() for k, gi in
                                A.gradient(lambda p, i=i: losses(p)[i], theta0).items())
                            for i in range(args.batch)])

    fast_t, slow_t = [], []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        fast = A.token_attribution(losses, theta0, direction)
        fast_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        slow = per_example()
        slow_t.append(time.perf_counter() - t0)
    err = float(((fast - slow).abs() / slow.abs().clamp(min=1e-12)).max())
    ratios = [s / f for s, f in zip(slow_t, fast_t)]
    print(f"| method | median s (batch {args.batch}) | min | max |")
    print("|---|---|---|---|")
    print(f"| JVP | {statistics.median(fast_t):.3f} | {min(fast_t):.3f} | {max(fast_t):.3f} |")
    print(f"| per-example backward | {statistics.median(slow_t):.3f} | {min(slow_t):.3f} | "
          f"{max(slow_t):.3f} |")
    print(f"speed-up (median of paired ratios): {statistics.median(ratios):.1f}x "
          f"[{min(ratios):.1f}, {max(ratios):.1f}]; max relative difference {err:.2e}")


if __name__ == "__main__":
    main()
