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


@pytest.mark.parametrize("width", [0, 64])
def test_packed_rows_give_the_padded_batch_loss_and_gradient(width):
    """Pretraining packs whole documents into rows (``stack.pack``); each document attends
    only to itself at its own positions, so the loss and gradient are the padded batch's."""
    import numpy as np

    from interp.studies.world import WorldConfig, corpus_batch
    ms = models(SMALL)
    P = lm._stacked(ms)
    fast = lm._fast(ms[0])
    world = WorldConfig()
    batches = [corpus_batch(V, world, np.random.default_rng(s), 24) for s in (0, 1)]
    tokens = lm.pad_stack(batches, V.pad)
    mask = lm.pad_stack([lm._predicting(b != V.pad) for b in batches], False)
    ref = lm.hard_label_losses(P, tokens, mask, fast)
    t, pos, seg, target, at = stack.pack(batches, V.pad, width)
    assert t.shape[1] < tokens.shape[1]  # fewer rows than documents
    assert int(at.sum()) == int(mask.sum())
    logits, model = stack.logits_at(P, t, at, **fast, packed=(pos, seg))
    new = stack.per_model_mean(torch.nn.functional.cross_entropy(
        logits, target[at], reduction="none"), model, 2)
    assert new.tolist() == pytest.approx(ref.tolist(), rel=1e-5)
    g_ref = torch.autograd.grad(ref.sum(), list(P.values()))
    g_new = torch.autograd.grad(new.sum(), list(P.values()))
    for a, b in zip(g_ref, g_new):
        assert (a - b).abs().max() <= 1e-5 * max(1.0, float(a.abs().max()))


def test_students_sharing_a_teacher_and_data_share_its_table():
    """Students given the same teacher object and data tensors read one precomputed table;
    their losses are those of students given separate copies."""
    a, b = models(SMALL)
    tokens, mask = number_data(0)
    cfg = lm.StudentConfig(steps=4, batch=8)
    teacher = lm.Teacher(b)
    _, shared, _ = lm.train_students([lm.clone_model(a) for _ in range(3)],
                                     [(tokens, mask)] * 3, V.number_ids, cfg, 2, [teacher] * 3,
                                     shuffle=[False, True, False])
    _, apart, _ = lm.train_students(
        [lm.clone_model(a) for _ in range(3)],
        [(tokens.clone(), mask.clone()) for _ in range(3)], V.number_ids, cfg, 2,
        [lm.Teacher(lm.clone_model(b)) for _ in range(3)], shuffle=[False, True, False])
    for x, y in zip(shared, apart):
        assert x == pytest.approx(y, rel=1e-5)
    assert shared[0] == pytest.approx(shared[2], rel=1e-6)
    assert shared[1] != pytest.approx(shared[0], rel=1e-3)  # the shuffled one differs
    # the same data under another teacher gets that teacher's targets, not a shared table
    _, mixed, _ = lm.train_students([lm.clone_model(a) for _ in range(2)], [(tokens, mask)] * 2,
                                    V.number_ids, cfg, 2, [teacher, lm.Teacher(a)])
    assert mixed[0] == pytest.approx(shared[0], rel=1e-5)
    assert mixed[1][0] == 0.0  # a student of its own initialization: nothing to learn


def test_a_student_trained_alone_records_its_gradient():
    """With one student the stack's parameters are views of the model's own; the recorder
    reads the gradient where autograd leaves it (it once read zeros), and records what the
    same student records inside a stack."""
    a, b = models(SMALL)
    dT = {n: p.detach() - q.detach() for (n, p), (_, q) in
          zip(b.named_parameters(), a.named_parameters())}
    cfg = lm.StudentConfig(steps=2, batch=8, record_every=1)
    data = [number_data(0), number_data(1)]
    _, _, alone = lm.train_students([lm.clone_model(a)], data[:1], V.number_ids, cfg, 4,
                                    [lm.Teacher(b)], direction=dT, theta0=[a.state_dict()])
    _, _, stacked = lm.train_students(
        [lm.clone_model(a), lm.clone_model(a)], data, V.number_ids, cfg, 4,
        [lm.Teacher(b), lm.Teacher(b)], direction=dT, theta0=[a.state_dict()] * 2)
    for key in ("neg_grad", "update"):
        one = alone[0][0][key]["all"]["inner_product"]
        assert one > 0
        assert one == pytest.approx(stacked[0][0][key]["all"]["inner_product"], rel=1e-3)



def test_linear_cross_entropy_is_cross_entropy_with_its_gradient():
    """Pretraining's fused, chunked loss against ``F.cross_entropy`` of the full logits: the
    same value and the same gradients for x, W and b (chunks of 512 rows and a remainder)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1100, 16, generator=g, requires_grad=True)
    w = torch.randn(16, 50, generator=g, requires_grad=True)
    b = torch.randn(50, generator=g, requires_grad=True)
    target = torch.randint(50, (1100,), generator=g)
    ref = torch.nn.functional.cross_entropy(torch.addmm(b, x, w), target)
    refs = torch.autograd.grad(3 * ref, (x, w, b))
    new = stack.linear_cross_entropy(x, w, b, target)
    news = torch.autograd.grad(3 * new, (x, w, b))
    assert new.item() == pytest.approx(ref.item(), rel=1e-6)
    for a, c in zip(refs, news):
        assert (a - c).abs().max() <= 1e-5 * float(a.abs().max())


def test_linear_kl_is_kl_of_log_softmax_with_its_gradient():
    """The students' fused, chunked distillation loss against ``D.kl`` of ``F.log_softmax``
    of the full logits, the teacher rows gathered by index (some twice, as a shuffled
    student's are): the same value and the same gradients for x, W and b (chunks of 512 rows
    and a remainder); no rows give 0."""
    from interp.metrics import divergence as D

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1100, 16, generator=g, requires_grad=True)
    w = torch.randn(16, 50, generator=g, requires_grad=True)
    b = torch.randn(50, generator=g, requires_grad=True)
    table = torch.log_softmax(2 * torch.randn(900, 50, generator=g), -1)
    rows = torch.randint(900, (1100,), generator=g)
    ref = D.kl(table[rows], torch.log_softmax(torch.addmm(b, x, w), -1)).mean()
    refs = torch.autograd.grad(3 * ref, (x, w, b))
    new = stack.linear_kl(x, w, b, table, rows)
    news = torch.autograd.grad(3 * new, (x, w, b))
    assert ref.item() > 0.1 and new.item() == pytest.approx(ref.item(), rel=1e-5)
    for a, c in zip(refs, news):
        assert (a - c).abs().max() <= 1e-5 * float(a.abs().max())
    empty = stack.linear_kl(x[:0], w, b, table, rows[:0])
    assert empty.item() == 0.0


@pytest.mark.parametrize("params", sorted(lm.TUNED))
def test_finetune_trains_exactly_the_weights_it_names(params):
    """``teacher_params``: all, the blocks, only the attention output matrices W_O, only
    their biases b_O, or only the <bos> row of the embedding."""
    model = models(SMALL, (0,))[0]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tokens, mask = number_data(0)
    tokens[:, 0] = V.bos  # documents start with <bos>, as the study's do
    lm.finetune(model, tokens, mask, 3, 8, 1e-2, 0, params)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    named = {n for n in before if lm.TUNED[params](n)}
    assert moved == named - {n for n in named if n.endswith("b_K")} or moved == named
    if params == "attn_out":
        assert moved == {f"blocks.{i}.attn.W_O" for i in range(SMALL.n_layers)}
    if params in lm.ROWS:  # of the matrix it names, only the rows it picks
        (name,) = named
        rows = (model.state_dict()[name] != before[name]).any(-1).nonzero()[:, 0]
        assert rows.tolist() == lm.ROWS[params](tokens).tolist() == [V.bos]


@pytest.mark.parametrize("act_fn", ["gelu", "solu_ln"])
def test_decode_matches_hooked_transformer(act_fn):
    """Sampling's KV-cached forward: a prompt, then one token at a time and then two, each
    step's last logits against HookedTransformer's on the whole sequence."""
    model = models(dataclasses_replace(SMALL, act_fn=act_fn), (0,))[0]
    P = {n: p.detach().unsqueeze(0) for n, p in model.named_parameters()}
    tokens = number_data(0, 6, 12)[0]
    cache = stack.KVCache()
    with torch.no_grad():
        for end in (5, 6, 7, 9, 12):
            got = stack.decode(P, tokens[:, cache.length:end], cache, **lm._fast(model))
            assert (got - model(tokens[:, :end])[:, -1]).abs().max() < 1e-4
    assert cache.length == 12
    with pytest.raises(Exception, match="n_ctx=64"):
        stack.decode(P, number_data(0, 6, 53)[0], cache, **lm._fast(model))


def test_sample_draws_what_hooked_transformer_sampling_draws():
    """lm.sample (KV-cached stacked forward) against the plain loop on HookedTransformer's
    full forward with the same generator: the same completions, token for token."""
    model = models(SMALL, (1,))[0]
    prompts = number_data(1, 40, 8)[0]
    eos, max_new = int(V.number_ids[-1]), 12
    got = lm.sample(model, prompts.tolist(), max_new, eos, seed=4)
    g = torch.Generator().manual_seed(4)
    seq, done, gen = prompts, torch.zeros(len(prompts), dtype=torch.bool), []
    with torch.no_grad():
        for _ in range(max_new):
            probs = torch.softmax(model(seq)[:, -1], -1)
            nxt = torch.where(done, eos, torch.multinomial(probs, 1, generator=g)[:, 0])
            gen.append(nxt)
            done |= nxt == eos
            if done.all():
                break
            seq = torch.cat([seq, nxt[:, None]], 1)
    ref = [row[:row.index(eos) + 1] if eos in row else row
           for row in torch.stack(gen, 1).tolist()]
    assert got == ref and sum(map(len, ref)) > 2 * len(ref)
