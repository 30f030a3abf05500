"""Where a pretraining step's time goes: the `pretrain_stacked` row's loop under the
torch profiler.

    python -m benchmarks.pretrain_profile [--steps 20] [--batch 64] [--threads 2]

1. Runs ``lm.pretrain_stack`` (two default bases stacked, the `pretrain_stacked` row's
   loop) for a warm-up, then ``steps`` steps under ``torch.profiler`` (CPU activities,
   FLOPs recorded).
2. Sorts every aten operator's self CPU time into classes (``CLASSES``, first match wins):
   matmuls, attention, the optimizer, embeddings, everything else elementwise.
3. Prints a table: seconds per step and share of the step for each class, the rest of the
   step (Python: drawing the corpus, packing, dispatch) as the wall time no operator holds.
   The profiler adds a fixed cost to every operator, so these shares overstate the many
   small operators; hence step 4.
4. Replays every matmul the step ran (``REPLAY``: mm, bmm, baddbmm, addmm at the recorded
   shapes and counts) without the profiler, and prints their time against the step's own
   (timed without the profiler) and their FLOP/s against the float32 matmul peak: the
   ceiling this model's matmul shapes put on the `pretrain_stacked` row, were everything
   else free.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.common import seconds
from benchmarks.pretrain import peak_flops
from interp.studies import lm
from interp.studies.world import Vocab, WorldConfig

# operator-name substrings per class, in order (the first that matches names the class)
CLASSES = (
    ("matmul", ("aten::mm", "aten::bmm", "aten::baddbmm", "aten::addmm", "aten::matmul")),
    ("attention", ("scaled_dot_product", "_flash_attention", "attention")),
    ("optimizer", ("_fused_adam", "adam", "foreach")),
    ("embedding", ("embedding", "index_add", "index_put", "scatter", "gather")),
)


# the leaf matmul kernels (aten::matmul calls these) and how many tensor inputs each takes
REPLAY = {"aten::mm": (torch.mm, 2), "aten::bmm": (torch.bmm, 2),
          "aten::baddbmm": (torch.baddbmm, 3), "aten::addmm": (torch.addmm, 3)}


def replay_seconds(prof, steps: int) -> tuple[float, float]:
    """(seconds, FLOPs) per step of the profiled matmuls, replayed without the profiler at
    their recorded shapes and counts (fastest of 3 timings per shape)."""
    total_s = total_f = 0.0
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key not in REPLAY:
            continue
        fn, n = REPLAY[e.key]
        args = [torch.randn(*shape) for shape in e.input_shapes if shape][:n]
        fn(*args)
        best = min(seconds(lambda fn=fn, args=args: fn(*args), number=20) for _ in range(3))
        total_s += best * e.count / steps
        total_f += e.flops / steps
    return total_s, total_f


def op_class(name: str) -> str:
    return next((c for c, keys in CLASSES if any(k in name for k in keys)), "elementwise/other")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pretrain_profile")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.steps < 1 or args.batch < 1 or args.threads < 1:
        p.error("--steps, --batch and --threads must be positive")
    torch.set_num_threads(args.threads)
    vocab, world = Vocab(), WorldConfig()
    models = [lm.build_model(lm.ModelConfig(), len(vocab), world.n_ctx, s) for s in (0, 1)]
    lm.pretrain_stack(models, vocab, world, 3, args.batch, 3e-3, [0, 1])  # warm-up
    models = [lm.build_model(lm.ModelConfig(), len(vocab), world.n_ctx, s) for s in (0, 1)]
    t0 = time.perf_counter()
    lm.pretrain_stack(models, vocab, world, args.steps, args.batch, 3e-3, [0, 1])
    step = (time.perf_counter() - t0) / args.steps  # no profiler
    models = [lm.build_model(lm.ModelConfig(), len(vocab), world.n_ctx, s) for s in (0, 1)]
    with profile(activities=[ProfilerActivity.CPU], with_flops=True,
                 record_shapes=True) as prof:
        t0 = time.perf_counter()
        lm.pretrain_stack(models, vocab, world, args.steps, args.batch, 3e-3, [0, 1])
        wall = time.perf_counter() - t0
    by_class: dict[str, float] = {}
    for e in prof.key_averages():
        if not e.key.startswith("aten::") and "adam" not in e.key.lower():
            continue
        c = op_class(e.key)
        by_class[c] = by_class.get(c, 0.0) + e.self_cpu_time_total / 1e6
    peak = peak_flops()
    held = sum(by_class.values())
    print(f"pretrain_stack, 2 default bases stacked, batch {args.batch}, {args.steps} steps, "
          f"{args.threads} torch threads (under the profiler: {wall / args.steps * 1e3:.1f} ms "
          "per step)\n")
    print("| class | ms per step | share of the step |")
    print("|---|---|---|")
    for c in [k for k, _ in CLASSES] + ["elementwise/other"]:
        s = by_class.get(c, 0.0)
        print(f"| {c} | {s / args.steps * 1e3:.1f} | {s / wall:.0%} |")
    rest = max(wall - held, 0.0)
    print(f"| no operator (Python: corpus, packing, dispatch) | {rest / args.steps * 1e3:.1f} | "
          f"{rest / wall:.0%} |")
    mm_s, mm_f = replay_seconds(prof, args.steps)
    print(f"\nwithout the profiler: {step * 1e3:.1f} ms per step; its matmuls replayed alone "
          f"{mm_s * 1e3:.1f} ms ({mm_s / step:.0%} of the step) at {mm_f / mm_s / 1e9:.0f} "
          f"GFLOP/s = {mm_f / mm_s / peak:.0%} of the {peak / 1e9:.0f} GFLOP/s float32 matmul "
          f"peak (torch.mm 2048 x 2048); the step's matmul FLOPs over the whole step: "
          f"{mm_f / step / peak:.0%} of the peak")


if __name__ == "__main__":
    main()
