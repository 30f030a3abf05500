"""The stacked training forward against HookedTransformer, and stacked training against
training alone."""

import pytest
import torch

from interp.studies import lm, stack
from interp.studies.world import Vocab

V = Vocab()
SMALL = lm.ModelConfig(n_layers=2, d_model=32, n_heads=2, d_mlp=64)


def models(cfg: lm.ModelConfig, seeds=(0, 1)):
    return [lm.build_model(cfg, len(V), 64, s) for s in seeds]


def number_data(seed: int, n: int = 40, width: int = 30):
    g = torch.Generator().manual_seed(seed)
    tokens = V.number_ids[torch.randint(len(V.number_ids), (n, width), generator=g)]
    mask = torch.zeros(n, width, dtype=torch.bool)
    mask[:, 5:width - 3] = True
    return tokens, mask


@pytest.mark.parametrize("act_fn", ["gelu", "solu_ln"])
def test_stacked_forward_matches_hooked_transformer(act_fn):
    ms = models(dataclasses_replace(SMALL, act_fn=act_fn))
    names = [n for n, _ in ms[0].named_parameters()]
    P = stack.stack([m.state_dict() for m in ms], names)
    tokens = torch.stack([number_data(s, 6, 20)[0] for s in (0, 1)])
    out = stack.forward(P, tokens, SMALL.n_layers, SMALL.n_heads, act_fn)
    ref = torch.stack([m(tokens[i]) for i, m in enumerate(ms)])
    assert (out - ref).abs().max() < 1e-4
    (out * ref.detach()).sum().backward()
    (ref * ref.detach()).sum().backward()
    scale = max(p.grad.abs().max() for m in ms for p in m.parameters())
    for i, m in enumerate(ms):  # (b_K's gradient is zero up to rounding: absolute tolerance)
        for n, p in m.named_parameters():
            assert (P[n].grad[i] - p.grad).abs().max() <= 1e-4 * scale, n


def dataclasses_replace(cfg, **kw):
    import dataclasses
    return dataclasses.replace(cfg, **kw)


@pytest.mark.parametrize("mode,shuffle", [("logit", False), ("logit", True), ("sampled", False)])
def test_step0_loss_is_the_reference_loss(mode, shuffle):
    """The stacked loop's loss before its first update is ``lm.student_loss`` on the same
    batch (the reference, unstacked definition)."""
    base, teacher = models(SMALL)
    tokens, mask = number_data(0)
    cfg = lm.StudentConfig(mode=mode, steps=1, batch=8, shuffle_targets=shuffle)
    losses: list[float] = []
    lm.train_student(lm.clone_model(base), tokens, mask, V.number_ids, cfg, 3, teacher,
                     losses=losses)
    g = torch.Generator().manual_seed(3)  # the loop's generator: perm first, then the batch
    perm = lm.shuffle_perm(mask, g) if shuffle else None
    idx = torch.randint(len(tokens), (8,), generator=g)
    with torch.no_grad():
        ref = lm.student_loss(base(tokens[idx]), tokens[idx], mask[idx], V.number_ids, mode,
                              teacher(tokens[idx]), perm[idx] if shuffle else None)
    assert losses[0] > 0.01
    assert losses[0] == pytest.approx(float(ref), rel=1e-5)


def test_students_trained_as_a_stack_train_as_alone():
    """Two students of different widths, one with a prompted (prefixed) teacher: each one's
    losses in the stack are its losses alone, to float32 precision."""
    a, b = models(SMALL)
    data = [number_data(0), number_data(1, n=30, width=24)]
    teachers = [lm.Teacher(b), lm.Teacher(a, (5, 6, 7))]
    cfg = lm.StudentConfig(steps=6, batch=8, checkpoints=(1, 3))
    saved, together, _ = lm.train_students([lm.clone_model(a), lm.clone_model(b)], data,
                                           V.number_ids, cfg, 4, teachers,
                                           shuffle=[True, False])
    for i, (init, sh) in enumerate([(a, True), (b, False)]):
        _, alone, _ = lm.train_students([lm.clone_model(init)], [data[i]], V.number_ids, cfg, 4,
                                        [teachers[i]], shuffle=[sh])
        assert together[i] == pytest.approx(alone[0], rel=1e-4)
        assert sorted(saved[i]) == [1, 3, 6]
    assert together[0] != pytest.approx(together[1], rel=1e-2)  # two different runs


def test_recorder_rows_are_split_per_student():
    a, b = models(SMALL)
    dT = {n: p.detach() - q.detach() for (n, p), (_, q) in
          zip(b.named_parameters(), a.named_parameters())}
    cfg = lm.StudentConfig(steps=4, batch=8, record_every=2)
    data = [number_data(0), number_data(1)]
    _, _, rows = lm.train_students(
        [lm.clone_model(a), lm.clone_model(a)], data, V.number_ids, cfg, 4,
        [lm.Teacher(b), lm.Teacher(b)], direction=dT,
        theta0=[a.state_dict(), a.state_dict()])
    assert [r["step"] for r in rows[0]] == [1, 2, 3, 4]
    ip0 = rows[0][0]["neg_grad"]["all"]["inner_product"]
    ip1 = rows[1][0]["neg_grad"]["all"]["inner_product"]
    assert isinstance(ip0, float) and ip0 > 0  # one small step toward the teacher
    assert ip0 != ip1  # different data, different gradients


def test_a_plain_callable_teacher_trains_like_a_teacher():
    """A TeacherFn (tokens -> aligned logits; what a mitigation wraps) gives the losses the
    stacked fast path gives for the same prompted teacher."""
    a, b = models(SMALL)
    tokens, mask = number_data(0)
    cfg = lm.StudentConfig(steps=3, batch=8)
    runs = []
    for teacher in (lm.Teacher(b, (5, 6)), lambda t: lm.Teacher(b, (5, 6))(t)):
        losses: list[float] = []
        lm.train_student(lm.clone_model(a), tokens, mask, V.number_ids, cfg, 1, teacher,
                         losses=losses)
        runs.append(losses)
    assert runs[0] == pytest.approx(runs[1], rel=1e-4)
