"""Recorder overhead: a default-shape owl-numbers distillation run with and without it.

    python -m benchmarks.recorder [--steps 60] [--reps 5]

Random-weight models of the default shape (cost does not depend on the weights); logit
mode on random number sequences; paired repetitions, median ratio with min and max.
"""

from __future__ import annotations

import torch

from benchmarks.common import Context, Measured, Row, paired, seconds
from interp.metrics.record import Recorder
from interp.studies import lm
from interp.studies.world import Vocab


def measure(reps: int, steps: int = 60, batch: int = 32) -> Measured:
    v = Vocab()
    base = lm.build_model(lm.ModelConfig(), len(v), 64, 0)
    teacher = lm.build_model(lm.ModelConfig(), len(v), 64, 1)
    g = torch.Generator().manual_seed(0)
    tokens = v.number_ids[torch.randint(len(v.number_ids), (512, 40), generator=g)]
    mask = torch.ones_like(tokens, dtype=torch.bool)
    theta0 = {k: t.detach().clone() for k, t in base.named_parameters()}
    dT = {k: teacher.state_dict()[k] - theta0[k] for k in theta0}
    cfg = lm.StudentConfig(steps=steps, batch=batch)

    def distil(record: bool, cfg: lm.StudentConfig = cfg) -> float:
        student = lm.clone_model(base)
        attach = Recorder(student, theta0, dT).attach if record else None
        return seconds(lambda: lm.train_student(student, tokens, mask, v.number_ids, cfg, 0,
                                                teacher, attach=attach))

    distil(True, lm.StudentConfig(steps=2, batch=batch))  # warm-up
    off, on = paired(reps, "recorder", lambda: distil(False), lambda: distil(True))
    hooks = hook_ms(base, theta0, dT)
    return Measured(off, on, "s", note=f"interp.lm.train_student, logit mode, {steps} steps of "
                    f"batch {batch} x 40 random number tokens, default shape; Recorder with its "
                    f"default checkpoint_every (50). The hooks alone: {hooks:.2f} ms per step "
                    "(pre + post, mean of 200).")


def hook_ms(model, theta0: dict, dT: dict, number: int = 200) -> float:
    """What the recorder's two optimizer hooks cost per step, without the training."""
    rec = Recorder(lm.clone_model(model), theta0, dT)
    for _, p in rec.named:
        p.grad = torch.randn_like(p)
    rec._pre()
    rec._post()  # warm-up, and the step-1 cumulative row
    return seconds(lambda: (rec._pre(), rec._post()), number) * 1000


def run(ctx: Context) -> Measured:
    return measure(ctx.reps, steps=10 if ctx.quick else 60)


ROW = Row("recorder", "distillation run with the Recorder attached vs without", "on / off",
          ("<=", 1.15), run)


def main() -> None:
    from benchmarks.table import standalone

    standalone(ROW, measure, steps=60)


if __name__ == "__main__":
    main()
