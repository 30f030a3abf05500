"""Held-out loss of the default base along its pretraining, for choosing ``pretrain_steps``
(issue 17: fewer wasted steps).

    python analyses/pretrain_curve.py [--steps 2000 1500] [--every 100] [--out FILE.md]

1. For each schedule length S in ``--steps``: build the default owl-numbers base (seed 0)
   and pretrain it with ``lm.pretrain_stack`` exactly as the study does (warm-up, cosine
   decay over S steps), one torch thread.
2. Every ``--every`` steps and at the end, the mean next-token loss on 16 held-out corpus
   batches of 64 documents (drawn from a generator the training never uses).
3. Write the table: step, then one held-out loss column per schedule.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import interp.studies.lm as lm
from interp.studies import stack
from interp.studies.owl import OwlConfig
from interp.studies.world import Vocab, corpus_batch


def curve(steps: int, every: int, cfg: OwlConfig) -> dict[int, float]:
    world = cfg.world
    vocab = Vocab(world.categories)
    model = lm.build_model(cfg.model, len(vocab), world.n_ctx, cfg.base_seed)
    rng = np.random.default_rng(12345)
    held = [corpus_batch(vocab, world, rng, 64) for _ in range(16)]

    @torch.no_grad()
    def heldout() -> float:
        P, fast = lm._stacked([model]), lm._fast(model)
        total = 0.0
        for b in held:
            t, pos, seg, target, at = stack.pack([b], vocab.pad, world.n_ctx)
            logits, _ = stack.logits_at(P, t, at, **fast, packed=(pos, seg))
            total += float(F.cross_entropy(logits, target[at]))
        return total / len(held)

    out: dict[int, float] = {}
    real = lm.tqdm

    class Every:  # the training loop's progress bar, which also evaluates every `every` steps
        def __init__(self, it, **_):
            self.it = it

        def __iter__(self):
            for i in self.it:
                if i % every == 0:
                    out[i] = heldout()
                yield i
            out[steps] = heldout()

        def set_postfix(self, **_):
            pass

    lm.tqdm = Every
    try:
        lm.pretrain_stack([model], vocab, world, steps, cfg.pretrain_batch, cfg.pretrain_lr,
                          [cfg.base_seed])
    finally:
        lm.tqdm = real
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, nargs="+", default=[2000, 1500])
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--out", type=Path, default=Path("runs/pretrain_curve.md"))
    args = p.parse_args()
    torch.set_num_threads(1)
    curves = {s: curve(s, args.every, OwlConfig()) for s in args.steps}
    all_steps = sorted({i for c in curves.values() for i in c})
    lines = ["# Held-out loss along pretraining (default owl-numbers base, seed 0)", "",
             f"command: `python analyses/pretrain_curve.py --steps "
             f"{' '.join(map(str, args.steps))} --every {args.every}`", "",
             "| step | " + " | ".join(f"{s}-step schedule" for s in args.steps) + " |",
             "|---|" + "---|" * len(args.steps)]
    for i in all_steps:
        lines.append(f"| {i} | " + " | ".join(f"{curves[s][i]:.4f}" if i in curves[s] else ""
                                               for s in args.steps) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
