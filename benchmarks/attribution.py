"""Per-token attribution: one JVP per batch vs a per-example backward loop.

    python -m benchmarks.attribution [--batch 64] [--reps 5]

Uses the default owl-numbers model shape (2 layers, d_model 64, vocabulary 1,054, 40
positions) at random weights: the cost does not depend on the weights. The quantity is
what ``python -m interp.align`` computes: the directional derivative along a direction of
every position's loss, [batch, positions]. The JVP gives all of them in one forward-mode
pass; reverse mode needs, for each example, one forward and one backward per position.
For reference the note also times the per-sequence version (one backward per example).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.common import Context, Measured, Row, paired, seconds
from interp.metrics import alignment as A
from interp.studies import lm
from interp.studies.world import Vocab


def measure(reps: int, batch: int = 64) -> Measured:
    v = Vocab()
    model = lm.build_model(lm.ModelConfig(), len(v), 64, 0)
    theta0 = {k: t.detach() for k, t in model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    direction = {k: 1e-2 * torch.randn(t.shape, generator=g) for k, t in theta0.items()}
    tokens = torch.randint(len(v), (batch, 40), generator=g)
    fn = A.model_fn(model)

    def losses(p: A.State, tok: torch.Tensor) -> torch.Tensor:  # [b, pos-1]
        logits = fn(p, tok)
        return F.cross_entropy(logits[:, :-1].flatten(0, 1), tok[:, 1:].flatten(),
                               reduction="none").view(len(tok), -1)

    names = list(theta0)

    def loop(per_sequence: bool = False) -> torch.Tensor:
        rows = []
        for i in range(batch):
            p = {k: v.detach().clone().requires_grad_(True) for k, v in theta0.items()}
            loss = losses(p, tokens[i:i + 1])[0]  # this example's per-position losses
            targets = [loss.mean()] if per_sequence else list(loss)
            row = []
            for j, lj in enumerate(targets):
                grads = torch.autograd.grad(lj, [p[k] for k in names],
                                            retain_graph=j < len(targets) - 1)
                row.append(sum((gk * direction[k]).sum() for k, gk in zip(names, grads)))
            rows.append(torch.stack(row))
        return torch.stack(rows)

    def jvp() -> torch.Tensor:
        return A.token_attribution(lambda p: losses(p, tokens), theta0, direction)

    fast, slow = jvp(), loop()
    err = float((fast - slow).abs().max() / slow.abs().max())  # relative to the largest value
    seq_jvp = seconds(lambda: A.token_attribution(lambda p: losses(p, tokens).mean(1), theta0,
                                                  direction), 3)
    seq_ratio = seconds(lambda: loop(per_sequence=True)) / seq_jvp
    loop_t, jvp_t = paired(reps, "attribution", lambda: seconds(loop), lambda: seconds(jvp, 3))
    return Measured(loop_t, jvp_t, "s", speedup=True,
                    note=f"batch {batch} x 40 tokens, default shape; per-token attribution "
                         "(interp.alignment.token_attribution, one JVP) vs a loop of "
                         "per-example forward + one backward per position, dotted with the "
                         "direction; the JVP is timed as the mean of 3 calls; they agree to "
                         f"max difference {err:.1e} relative to the largest attribution. "
                         "Per-sequence attribution (one "
                         "backward per example, no per-token split; measured once, not "
                         f"paired): loop / JVP = {seq_ratio:.1f}.")


def run(ctx: Context) -> Measured:
    return measure(ctx.reps, batch=16 if ctx.quick else 64)


ROW = Row("attribution", "per-token attribution by one JVP vs a per-example backward loop",
          "loop / JVP", (">=", 10.0), run)


def main() -> None:
    from benchmarks.table import standalone

    standalone(ROW, measure, batch=64)


if __name__ == "__main__":
    main()
