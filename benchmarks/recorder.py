"""Recorder overhead: a default-shape owl-numbers distillation run with and without it.

    python -m benchmarks.recorder [--steps 100] [--reps 5]

Random-weight models of the default shape (cost does not depend on the weights); logit
mode on random number sequences; paired repetitions, median ratio with min and max.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from interp import lm
from interp.record import Recorder
from interp.world import Vocab


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    v = Vocab()
    base = lm.build_model(lm.ModelConfig(), len(v), 64, 0)
    teacher = lm.build_model(lm.ModelConfig(), len(v), 64, 1)
    g = torch.Generator().manual_seed(0)
    tokens = v.number_ids[torch.randint(len(v.number_ids), (512, 40), generator=g)]
    mask = torch.ones_like(tokens, dtype=torch.bool)
    theta0 = {k: t.detach().clone() for k, t in base.named_parameters()}
    dT = {k: teacher.state_dict()[k] - theta0[k] for k in theta0}
    cfg = lm.StudentConfig(steps=args.steps)
    off, on = [], []
    for _ in range(args.reps):
        for times, record in ((off, False), (on, True)):
            student = lm.clone_model(base)
            attach = Recorder(student, theta0, dT).attach if record else None
            t0 = time.perf_counter()
            lm.train_student(student, tokens, mask, v.number_ids, cfg, 0, teacher,
                             attach=attach)
            times.append(time.perf_counter() - t0)
    ratios = [b / a for a, b in zip(off, on)]
    print(f"| recorder | median s ({args.steps} steps) | min | max |\n|---|---|---|---|")
    for name, t in (("off", off), ("on", on)):
        print(f"| {name} | {statistics.median(t):.2f} | {min(t):.2f} | {max(t):.2f} |")
    print(f"overhead ratio (median of paired): {statistics.median(ratios):.3f} "
          f"[{min(ratios):.3f}, {max(ratios):.3f}]; goal <= 1.15")


if __name__ == "__main__":
    main()
