"""The cold demo's inner loops against the code they replaced (or might), paired.

    python -m benchmarks.kernels [--reps 5]

1. ``corpus``: a pretraining batch of 64 documents, ``world.corpus_batch`` (write each
   document's text, tokenize it) against ``world.corpus_batch_ids`` (the same draws straight
   to token ids; equal token for token, ``tests/studies/test_world.py``).
2. ``distill_loss``: the students' loss and its backward for a seed's five stacked students
   (7,500 positions x the 1,006 number tokens at the default shape), the unfused reference
   (each model's number logits by ``addmm`` as ``stack.logits_at`` computes them,
   ``F.log_softmax``, ``D.kl`` over the gathered teacher rows, per-model means) against
   ``stack.linear_kl`` (fused and chunked).
3. ``sampling``: 1,024 number prompts continued for up to 26 tokens by a default-shape model,
   HookedTransformer's forward with its KV cache (what ``lm.sample`` ran before) against
   ``lm.sample`` (``stack.decode``); both draw with ``torch.multinomial`` from one generator
   and, at random weights, run all 26 steps; the note counts the prompts whose completions
   the two drew identically.

4. ``compile``: base pretraining (``lm.pretrain_stack``, one default base, batch 64) with
   ``stack.residual`` (every layer's forward, the elementwise work the profile of
   ``benchmarks.pretrain_profile`` finds beside the matmuls) as is against
   ``torch.compile(stack.residual, dynamic=True)`` (packed rows vary in number from step to
   step), both after warm-up; the note gives the first compiled steps' wall time, compile
   included (an empty inductor cache), and how far the compiled losses drift. The issue's
   "``torch.compile`` where it pays on CPU": a ratio under 1 means it does not pay.

All at one torch thread (each worker of ``make demo`` has one).
"""

from __future__ import annotations

import os
import tempfile
import time
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from transformer_lens import TransformerLensKeyValueCache

from benchmarks.common import Measured, Row, paired, seconds, torch_threads
from interp.metrics import divergence as D
from interp.studies import lm, stack
from interp.studies.world import (
    Vocab,
    WorldConfig,
    corpus_batch,
    corpus_batch_ids,
    number_document,
)


def _one_thread(fn):
    def wrapped(*a, **k):
        with torch_threads(1):
            return fn(*a, **k)
    return wrapped


@_one_thread
def corpus(reps: int, number: int = 50) -> Measured:
    v, w = Vocab(), WorldConfig()
    rng = np.random.default_rng(0)
    base, cand = paired(reps, "corpus",
                        lambda: seconds(lambda: corpus_batch(v, w, rng, 64), number),
                        lambda: seconds(lambda: corpus_batch_ids(v, w, rng, 64), number))
    return Measured(base, cand, "s", speedup=True,
                    note=f"a batch of 64 documents, default world; mean of {number} batches")


@_one_thread
def distill_loss(reps: int, m: int = 5, n: int = 1500, number: int = 3) -> Measured:
    v = Vocab()
    k, d = len(v.number_ids), lm.ModelConfig().d_model
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(n, d, generator=g, requires_grad=True) for _ in range(m)]
    w = torch.randn(m, d, k, generator=g, requires_grad=True)
    b = torch.randn(m, k, generator=g, requires_grad=True)
    table = torch.log_softmax(torch.randn(20 * n, k, generator=g), -1)
    rows = [torch.randint(len(table), (n,), generator=g) for _ in range(m)]
    model = torch.repeat_interleave(torch.arange(m), n)

    def unfused() -> None:
        s = torch.cat([torch.addmm(b[i], x, w[i]) for i, x in enumerate(xs)])
        kl = D.kl(torch.cat([table[r] for r in rows]), F.log_softmax(s, -1))
        stack.per_model_mean(kl, model, m).sum().backward()

    def fused() -> None:
        torch.stack([stack.linear_kl(x, w[i], b[i], table, rows[i])
                     for i, x in enumerate(xs)]).sum().backward()

    unfused(), fused()  # warm-up
    base, cand = paired(reps, "distill_loss", lambda: seconds(unfused, number),
                        lambda: seconds(fused, number))
    return Measured(base, cand, "s", speedup=True,
                    note=f"{m} students x {n} positions x {k} number tokens, d_model {d}, "
                         f"forward and backward; mean of {number} calls")


def _tl_sample(model, prompts: list[list[int]], max_new: int, eos: int, seed: int,
               batch: int = 512) -> list[list[int]]:
    """``lm.sample`` before stack.decode (equal-length prompts): HookedTransformer's forward
    with its KV cache."""
    g = torch.Generator().manual_seed(seed)
    out: list[list[int]] = []
    for s in range(0, len(prompts), batch):
        toks = torch.tensor(prompts[s:s + batch])
        cache = TransformerLensKeyValueCache.init_cache(model.cfg, "cpu", len(toks))
        logits = model(toks, past_kv_cache=cache, attention_mask=torch.ones_like(toks))[:, -1]
        done, gen = torch.zeros(len(toks), dtype=torch.bool), []
        for _ in range(max_new):
            nxt = torch.multinomial(F.softmax(logits, -1), 1, generator=g)[:, 0]
            nxt = torch.where(done, eos, nxt)
            gen.append(nxt)
            done |= nxt == eos
            if done.all():
                break
            logits = model(nxt[:, None], past_kv_cache=cache,
                           attention_mask=torch.ones_like(nxt[:, None]))[:, -1]
        out += [row[:row.index(eos) + 1] if eos in row else row
                for row in torch.stack(gen, 1).tolist()]
    return out


@_one_thread
def sampling(reps: int, n: int = 1024) -> Measured:
    v, w = Vocab(), WorldConfig()
    model = lm.build_model(lm.ModelConfig(), len(v), w.n_ctx, 0)
    rng = np.random.default_rng(0)
    docs = [v.encode(number_document(rng)[0]) for _ in range(4 * n)]
    prompts = [p for p in docs if len(p) == len(docs[0])][:n]  # one length: one group
    drawn: dict[str, list[list[int]]] = {}  # each sampler's completions, from its last rep
    base, cand = paired(
        reps, "sampling",
        lambda: seconds(lambda: drawn.update(tl=_tl_sample(model, prompts, 26, v.eos, 0))),
        lambda: seconds(lambda: drawn.update(new=lm.sample(model, prompts, 26, v.eos, 0))))
    same = sum(a == b for a, b in zip(drawn["tl"], drawn["new"]))
    return Measured(base, cand, "s", speedup=True,
                    note=f"{len(prompts)} prompts of {len(prompts[0])} tokens, up to 26 new, "
                         "default shape at random weights, batches of 512; one call each; "
                         f"the same completions, token for token: {same} of {len(prompts)}")


@_one_thread
def compiled(reps: int, steps: int = 40, warm: int = 3) -> Measured:
    v, w = Vocab(), WorldConfig()

    def train(n: int, seed: int = 0) -> list[float]:
        model = lm.build_model(lm.ModelConfig(), len(v), w.n_ctx, 0)
        return [r[0] for r in lm.pretrain_stack([model], v, w, n, 64, 3e-3, [seed])]

    fn = torch.compile(stack.residual, dynamic=True)

    def train_compiled(n: int) -> list[float]:
        with mock.patch.object(stack, "residual", fn):  # residual_at calls it by this name
            return train(n)

    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # a cold compile, as on a fresh machine
        try:
            t0 = time.perf_counter()
            first = train_compiled(warm)
            cold = time.perf_counter() - t0
            eager = train(warm)
            base, cand = paired(reps, "compile", lambda: seconds(lambda: train(steps)),
                                lambda: seconds(lambda: train_compiled(steps)))
        finally:  # the caller's setting back
            if before is None:
                del os.environ["TORCHINDUCTOR_CACHE_DIR"]
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = before
    drift = max(abs(a - b) for a, b in zip(first, eager))
    eager_warm = float(np.median(base)) * warm / steps
    return Measured(base, cand, "s", speedup=True,
                    note=f"one default base, batch 64, {steps} steps per call, both after "
                         f"warm-up; the first {warm} compiled steps took {cold:.1f} s "
                         f"(compile included, empty inductor cache), against "
                         f"{eager_warm:.2f} s eager; the compiled losses differ from eager's "
                         f"by up to {drift:.1e} in those steps")


ROWS = [
    Row("corpus", "pretraining batch: corpus_batch_ids vs corpus_batch (text, tokenized)",
        "text / ids", None, lambda ctx: corpus(ctx.reps, number=10 if ctx.quick else 50)),
    Row("distill_loss", "students' loss + backward: stack.linear_kl vs the unfused reference",
        "unfused / fused", None, lambda ctx: distill_loss(ctx.reps, n=300 if ctx.quick else 1500)),
    Row("sampling", "data generation: lm.sample (stack.decode) vs HookedTransformer KV cache",
        "TL / decode", None, lambda ctx: sampling(ctx.reps, n=128 if ctx.quick else 1024)),
    Row("compile", "base pretraining: torch.compile(stack.residual) vs eager, after compiling",
        "eager / compiled", None, lambda ctx: compiled(ctx.reps, steps=5 if ctx.quick else 40)),
]


def main() -> None:
    import argparse

    from benchmarks.table import table

    p = argparse.ArgumentParser(prog="python -m benchmarks.kernels")
    p.add_argument("--reps", type=int, default=5)
    reps = p.parse_args().reps
    if reps < 1:
        p.error("--reps must be at least 1")
    fns = (corpus, distill_loss, sampling, compiled)
    print(table([(row, fn(reps)) for row, fn in zip(ROWS, fns)]))


if __name__ == "__main__":
    main()
