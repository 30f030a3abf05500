"""Activation capture: interp.activations.capture vs TransformerLens run_with_cache.

    python -m benchmarks.capture [--n 256] [--reps 5]

The default owl-numbers model shape at random weights, every ``blocks.{l}.hook_resid_post``,
no store: the toolkit's overhead over the plain TransformerLens call it wraps.
"""

from __future__ import annotations

import torch

from benchmarks.common import Context, Measured, Row, paired, seconds
from interp.storage.activations import capture, hook_names
from interp.studies import lm
from interp.studies.world import Vocab


def measure(reps: int, n: int = 256, pos: int = 40, number: int = 5) -> Measured:
    v = Vocab()
    model = lm.build_model(lm.ModelConfig(), len(v), 64, 0)
    tokens = torch.randint(len(v), (n, pos), generator=torch.Generator().manual_seed(0))
    names = hook_names(model)

    @torch.no_grad()
    def plain() -> None:
        model.run_with_cache(tokens, names_filter=names)

    plain()  # warm-up
    capture(model, tokens, names)
    tl, ours = paired(reps, "capture", lambda: seconds(plain, number),
                      lambda: seconds(lambda: capture(model, tokens, names), number))
    return Measured(tl, ours, "s",
                    note=f"{n} x {pos} tokens, default shape, hooks {', '.join(names)}; "
                         f"each figure is the mean of {number} calls; the TransformerLens "
                         "baseline also runs under torch.no_grad, as capture does.")


def run(ctx: Context) -> Measured:
    return measure(ctx.reps, n=64 if ctx.quick else 256, number=2 if ctx.quick else 5)


ROW = Row("capture", "activation capture (interp.activations.capture) vs TL run_with_cache",
          "toolkit / TL", ("<=", 1.1), run)


def main() -> None:
    from benchmarks.table import standalone

    standalone(ROW, measure, n=256)


if __name__ == "__main__":
    main()
