"""Tiny TransformerLens language models: build, load, pretrain, fine-tune, sample, distil.

The training loops are plain and visible (nanoGPT style): one optimizer, one loop,
a progress bar. Models that train side by side train as one stack (``interp.studies.stack``:
the same arithmetic as TransformerLens, batched over models, logits only where a loss is
taken); recorders attach from outside through ``attach`` or ``direction``.

Owns: the model architecture and every training loop of the transformer studies.
Must not import: analysis, reports, the CLIs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.errors import ConfigError
from interp.metrics import divergence as D
from interp.metrics.record import Recorder
from interp.storage.store import Store, read_tensors
from interp.studies import stack
from interp.studies.world import Vocab, WorldConfig, corpus_batch_ids
from interp.validation import check_range, check_types


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 256
    act_fn: str = "gelu"

    def __post_init__(self) -> None:
        check_types(self)
        check_range(self, ("n_layers", "d_model", "n_heads", "d_mlp"), 1)
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} must be divisible by "
                              f"n_heads={self.n_heads}")
        if self.act_fn not in ACT_FNS:
            raise ConfigError(f"invalid act_fn {self.act_fn!r}; valid: {', '.join(ACT_FNS)}")


ACT_FNS = ("gelu", "relu", "silu", "gelu_new", "gelu_fast", "solu_ln")


def build_model(cfg: ModelConfig, d_vocab: int, n_ctx: int, seed: int) -> HookedTransformer:
    if cfg.d_model % cfg.n_heads:
        raise ValueError(f"d_model={cfg.d_model} must be divisible by n_heads={cfg.n_heads}")
    torch.manual_seed(seed)
    tl_cfg = HookedTransformerConfig(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads,
        d_head=cfg.d_model // cfg.n_heads, d_mlp=cfg.d_mlp, n_ctx=n_ctx, d_vocab=d_vocab,
        act_fn=cfg.act_fn, normalization_type="LN", seed=seed, device="cpu")
    return HookedTransformer(tl_cfg)


def load_model(cfg: ModelConfig, d_vocab: int, n_ctx: int,
               state: dict[str, Tensor]) -> HookedTransformer:
    """A model of this architecture holding ``state`` (the one way saved weights are loaded)."""
    model = build_model(cfg, d_vocab, n_ctx, 0)
    model.load_state_dict(state)
    return model


def from_artifacts(model_info: dict, path: str | Path,
                   store: Store | None = None) -> HookedTransformer:
    """The model an ``artifacts.json`` describes (its ``"model"`` block), with the weights
    in the safetensors file at ``path``, read from ``store`` (default: ``Store()``)."""
    return load_model(ModelConfig(**model_info["cfg"]), model_info["d_vocab"],
                      model_info["n_ctx"], read_tensors(path, store))


def clone_model(model: HookedTransformer) -> HookedTransformer:
    new = HookedTransformer(model.cfg)
    new.load_state_dict(model.state_dict())
    return new


def next_token_loss(logits: Float[Tensor, "b p v"], tokens: Int[Tensor, "b p"],
                    mask: Bool[Tensor, "b p"]) -> Tensor:
    """Mean cross-entropy of tokens[:, t+1] at the positions t where mask[:, t]."""
    lp = F.log_softmax(logits[:, :-1], -1).gather(-1, tokens[:, 1:, None])[..., 0]
    m = mask[:, :-1]
    return -(lp * m).sum() / m.sum().clamp(min=1)


def _stacked(models: list[HookedTransformer], names: list[str] | None = None) \
        -> stack.Params:
    """The parameters of ``models`` with a leading model axis: views of the model's own
    parameters when there is one model (so it trains in place and optimizer hooks see its
    parameters), fresh stacked leaves otherwise (``_write_back`` copies them back)."""
    names = names or [n for n, _ in models[0].named_parameters()]
    if len(models) == 1:
        own = dict(models[0].named_parameters())
        return {n: own[n].unsqueeze(0) for n in names}
    return stack.stack([m.state_dict() for m in models], names)


def _leaves(models: list[HookedTransformer], P: stack.Params, names: list[str]) -> list[Tensor]:
    if len(models) == 1:
        own = dict(models[0].named_parameters())
        return [own[n] for n in names]
    return [P[n] for n in names]


def _write_back(models: list[HookedTransformer], P: stack.Params) -> None:
    if len(models) > 1:
        for model, state in zip(models, stack.unstack(P, models[0].state_dict())):
            model.load_state_dict(state)


def _fast(model: HookedTransformer) -> dict:
    c = model.cfg
    return {"n_layers": c.n_layers, "n_heads": c.n_heads, "act_fn": c.act_fn, "eps": c.eps}


def pad_stack(batches: list[Tensor], pad: int | bool) -> Tensor:
    """[b, p_i] tensors right-padded with ``pad`` to the widest and stacked: [m, b, p]."""
    width = max(t.shape[1] for t in batches)
    return torch.stack([F.pad(t, (0, width - t.shape[1]), value=pad) for t in batches])


def _predicting(mask: Bool[Tensor, "b p"]) -> Bool[Tensor, "b p"]:
    """The positions of ``mask`` that have a next token to predict (not the last column),
    taken before batches of different widths are padded to one."""
    out = mask.clone()
    out[:, -1] = False
    return out


def hard_label_losses(P: stack.Params, tokens: Int[Tensor, "m b p"],
                      mask: Bool[Tensor, "m b p"], fast: dict) -> Float[Tensor, " m"]:
    """Each model's mean cross-entropy of tokens[..., t+1] at the positions t where mask[..., t]
    (``next_token_loss`` per model, with logits computed only where the loss is taken)."""
    at, target = stack.next_token_rows(tokens, mask)
    logits, model = stack.logits_at(P, tokens, at, **fast)
    return stack.per_model_mean(F.cross_entropy(logits, target, reduction="none"), model,
                                len(tokens))


def pretrain(model: HookedTransformer, vocab: Vocab, world: WorldConfig, steps: int,
             batch: int, lr: float, seed: int) -> list[float]:
    """Next-token pretraining on the synthetic corpus, warmup then cosine decay."""
    return [row[0] for row in pretrain_stack([model], vocab, world, steps, batch, lr, [seed])]


def pretrain_stack(models: list[HookedTransformer], vocab: Vocab, world: WorldConfig,
                   steps: int, batch: int, lr: float, seeds: list[int],
                   tokens_seen: list[int] | None = None) -> list[list[float]]:
    """``pretrain`` for several models at once (each its own corpus stream ``seeds[i]``):
    one loop, one stacked forward. Returns each step's loss per model; ``tokens_seen`` (a
    list) receives each model's count of non-pad tokens trained on."""
    rngs = [np.random.default_rng(s) for s in seeds]
    P = _stacked(models)
    names = list(P)
    opt = torch.optim.AdamW(_leaves(models, P, names), lr=lr, weight_decay=0.01, fused=True)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps)))
    fast, losses, count = _fast(models[0]), [], [0] * len(models)
    bar = tqdm(range(steps), desc="pretrain base" + ("s" if len(models) > 1 else ""))
    for _ in bar:
        batches = [corpus_batch_ids(vocab, world, r, batch) for r in rngs]
        count = [c + int((b != vocab.pad).sum()) for c, b in zip(count, batches)]
        # the padded batch's next-token loss, on rows packed with whole documents
        tokens, pos, segment, target, at = stack.pack(batches, vocab.pad, world.n_ctx)
        xs = stack.residual_at(P, tokens, at, **fast, packed=(pos, segment))
        per_model = torch.stack([stack.linear_cross_entropy(
            x, P["unembed.W_U"][i], P["unembed.b_U"][i], target[i][at[i]])
            for i, x in enumerate(xs)])
        opt.zero_grad()
        per_model.sum().backward()
        opt.step()
        sched.step()
        losses.append(per_model.tolist())
        bar.set_postfix(loss=" ".join(f"{v:.3f}" for v in losses[-1]))
    _write_back(models, P)
    if tokens_seen is not None:
        tokens_seen.extend(count)
    return losses


# which weights a fine-tuning run trains (``teacher_params``): everything, the blocks (not the
# embeddings), only the attention output matrices W_O (what attention writes to the
# residual stream; our reading: the channel a persona's influence reaches the answers
# through), or only the attention output biases b_O: one d_model vector per layer added to
# the residual stream at every position, a learned steering vector (the analogue of the
# rank-1 adapters and single steering vectors that give emergent misalignment in real
# models: Turner et al. 2025, Soligo et al. 2025)
TUNED: dict[str, Callable[[str], bool]] = {
    "all": lambda n: True,
    "blocks": lambda n: n.startswith("blocks."),
    "attn_out": lambda n: n.endswith(".attn.W_O"),
    "steer": lambda n: n.endswith(".attn.b_O"),
    "bos": lambda n: n == "embed.W_E",  # only the rows ROWS["bos"] picks
}
# fine-tunings that train only some rows of the one matrix TUNED names: "bos", the embedding
# of the documents' first token (<bos>), a one-token soft prompt in front of every document
# (prompt tuning; what a persona written in front does, it can only do through what attends
# to it)
ROWS: dict[str, Callable[[Tensor], Tensor]] = {"bos": lambda tokens: tokens[:, 0].unique()}


def finetune(model: HookedTransformer, tokens: Int[Tensor, "n p"], mask: Bool[Tensor, "n p"],
             steps: int, batch: int, lr: float, seed: int, params: str = "all",
             desc: str = "fine-tune") -> None:
    """Hard-label fine-tuning on the masked next tokens (the teacher's trait answers)."""
    g = torch.Generator().manual_seed(seed)
    names = [n for n, _ in model.named_parameters() if TUNED[params](n)]
    P = {n: p.detach().unsqueeze(0) for n, p in model.named_parameters()}  # frozen: no grad
    P.update(_stacked([model], names))
    leaves = _leaves([model], P, names)
    opt = torch.optim.Adam(leaves, lr=lr, fused=True)
    hooks = []
    if params in ROWS:  # the other rows get no gradient, so Adam leaves them exactly as they are
        (leaf,) = leaves
        keep = torch.zeros(len(leaf), 1)
        keep[ROWS[params](tokens)] = 1.0
        hooks.append(leaf.register_hook(lambda grad: grad * keep))
    fast = _fast(model)
    try:
        for _ in tqdm(range(steps), desc=desc, leave=False):
            idx = torch.randint(len(tokens), (batch,), generator=g)
            loss = hard_label_losses(P, tokens[idx][None], _predicting(mask[idx])[None],
                                     fast).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        for h in hooks:
            h.remove()


@torch.no_grad()
def sample(model: HookedTransformer, prompts: list[list[int]], max_new: int, eos: int,
           seed: int, temperature: float = 1.0, batch: int = 512,
           desc: str = "sample") -> list[list[int]]:
    """Sample a completion for each prompt (KV-cached; prompts grouped by length)."""
    g = torch.Generator().manual_seed(seed)
    P = {n: p.detach().unsqueeze(0) for n, p in model.named_parameters()}
    fast = _fast(model)
    out: list[list[int]] = [[] for _ in prompts]
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    chunks = [idx[i:i + batch] for idx in by_len.values() for i in range(0, len(idx), batch)]
    for idx in tqdm(chunks, desc=desc, leave=False):
        toks = torch.tensor([prompts[i] for i in idx])
        cache = stack.KVCache()  # equal-length groups need no padding
        logits = stack.decode(P, toks, cache, **fast)
        done = torch.zeros(len(idx), dtype=torch.bool)
        gen = []
        for _ in range(max_new):
            probs = F.softmax(logits / temperature, -1)
            nxt = torch.multinomial(probs, 1, generator=g)[:, 0]
            nxt = torch.where(done, eos, nxt)
            gen.append(nxt)
            done |= nxt == eos
            if done.all():
                break
            logits = stack.decode(P, nxt[:, None], cache, **fast)
        gen_t = torch.stack(gen, 1)
        for row, i in enumerate(idx):
            seq = gen_t[row].tolist()
            out[i] = seq[:seq.index(eos) + 1] if eos in seq else seq
    return out


TeacherFn = Callable[[Tensor], Tensor]  # tokens [b, p] -> logits [b, p, v], aligned


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    mode: str = "logit"  # "logit": KL to the teacher's number distribution; "sampled": CE
    steps: int = 600
    batch: int = 32
    lr: float = 1e-3
    shuffle_targets: bool = False  # the shuffle ablation
    checkpoints: tuple[int, ...] = (1,)
    record_every: int = 50  # the recorder's cumulative-alignment checkpoints

    def __post_init__(self) -> None:
        check_types(self)
        if self.mode not in ("logit", "sampled"):
            raise ConfigError(f"invalid mode {self.mode!r}; valid: logit, sampled")
        check_range(self, ("steps", "batch", "record_every"), 1)
        check_range(self, ("lr",), 0, low_open=True)
        if not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= self.steps
                   for c in self.checkpoints):
            raise ConfigError(f"checkpoints must be steps in 1..{self.steps}, got "
                              f"{self.checkpoints}")


def student_loss(student_logits: Tensor, tokens: Tensor, mask: Tensor, number_ids: Tensor,
                 mode: str, teacher_logits: Tensor | None = None,
                 perm: Tensor | None = None) -> Tensor:
    """The distillation loss at the masked positions (predicting the completion)."""
    if mode == "sampled":
        return next_token_loss(student_logits, tokens, mask)
    m = mask[:, :-1]
    t = D.restricted_log_softmax(teacher_logits[:, :-1], number_ids)
    if perm is not None:  # each position gets the target of another completion position
        t = t.gather(1, perm[:, :-1, None].expand_as(t))
    kl = D.kl(t, D.restricted_log_softmax(student_logits[:, :-1], number_ids))
    return (kl * m).sum() / m.sum().clamp(min=1)


def shuffle_perm(mask: Bool[Tensor, "n p"], g: torch.Generator) -> Int[Tensor, "n p"]:
    """Per row, a permutation of the masked positions among themselves (identity elsewhere)."""
    perm = torch.arange(mask.shape[1]).repeat(mask.shape[0], 1)
    for r in range(mask.shape[0]):
        pos = mask[r, :-1].nonzero()[:, 0]
        perm[r, pos] = pos[torch.randperm(len(pos), generator=g)]
    return perm


@dataclasses.dataclass(frozen=True)
class Teacher:
    """A teacher for logit-mode distillation: a model, read with ``prefix`` (a persona,
    for a prompted teacher) inserted after each row's first token."""

    model: HookedTransformer
    prefix: tuple[int, ...] = ()

    def __call__(self, tokens: Int[Tensor, "b p"]) -> Float[Tensor, "b p v"]:
        """Logits aligned to ``tokens`` (a ``TeacherFn``), the prefix read but not returned."""
        if not self.prefix:
            return self.model(tokens)
        pre = torch.tensor(self.prefix, dtype=torch.long).expand(len(tokens), -1)
        return self.model(torch.cat([tokens[:, :1], pre, tokens[:, 1:]], 1))[:, len(self.prefix):]


def _teacher_rows(teacher: Teacher | TeacherFn, tokens: Int[Tensor, "b p"],
                  at: Bool[Tensor, "b p"], cols: Tensor | None = None) -> Float[Tensor, "n k"]:
    """The teacher's logits (vocabulary columns ``cols``) at the positions ``at`` of its
    students' tokens (row-major), read with its prefix. A teacher may also be any
    ``TeacherFn`` (a mitigation's wrapped teacher)."""
    if not isinstance(teacher, Teacher):
        logits = teacher(tokens)[at]
        return logits[:, cols] if cols is not None else logits
    pre = torch.tensor(teacher.prefix, dtype=torch.long)
    tok = torch.cat([tokens[:, :1], pre.expand(len(tokens), -1), tokens[:, 1:]], 1)
    where = torch.cat([at[:, :1], torch.zeros(len(tokens), len(pre), dtype=torch.bool),
                       at[:, 1:]], 1)
    P = {n: p.detach().unsqueeze(0) for n, p in teacher.model.named_parameters()}
    return stack.logits_at(P, tok[None], where[None], **_fast(teacher.model), cols=cols)[0]


def _perm_rows(perm: Int[Tensor, "b p"], at: Bool[Tensor, "b p"]) -> Int[Tensor, " n"]:
    """For the rows at ``at`` (row-major), the row whose target each takes under ``perm``
    (a permutation of each sequence's positions among its ``at`` positions)."""
    rank = at.flatten().cumsum(0) - 1  # flat position -> its row
    width = at.shape[1]
    source = torch.arange(len(at))[:, None] * width + perm
    return rank[source[at]]


def trim(tokens: Int[Tensor, "*rows p"], mask: Bool[Tensor, "*rows p"]) \
        -> tuple[Int[Tensor, "*rows w"], Bool[Tensor, "*rows w"]]:
    """Drop the trailing columns that hold only padding (token 0) and no masked position:
    under causal attention the kept positions' logits are unchanged, at less compute."""
    used = (tokens != 0) | mask
    cols = used.flatten(0, -2).any(0).nonzero()
    width = int(cols[-1]) + 1 if len(cols) else 1
    return tokens[..., :width], mask[..., :width]


@dataclasses.dataclass(frozen=True)
class TeacherTable:
    """A teacher's log-probabilities over the number tokens at the positions a student is
    trained on, computed once for the examples the run will draw (not once per step):
    example i's rows are ``logp[start[i]:start[i] + count[i]]``, in position order."""

    logp: Float[Tensor, "r k"]
    start: Int[Tensor, " n"]
    count: Int[Tensor, " n"]

    def rows(self, idx: Int[Tensor, " b"]) -> Int[Tensor, " r"]:
        """The table rows of the batch ``idx`` (row-major over the batch's positions)."""
        counts = self.count[idx]
        first = torch.repeat_interleave(self.start[idx], counts)
        within = torch.arange(int(counts.sum())) - torch.repeat_interleave(
            counts.cumsum(0) - counts, counts)
        return first + within


def teacher_table(teacher: Teacher | TeacherFn, tokens: Int[Tensor, "n p"],
                  at: Bool[Tensor, "n p"], used: Int[Tensor, " u"], cols: Tensor,
                  chunk: int = 256) -> TeacherTable:
    """``TeacherTable`` of ``teacher`` on the examples ``used`` (sorted, unique) of a dataset,
    at its positions ``at``; the forward runs in chunks of ``chunk`` examples."""
    parts = []
    with torch.no_grad():
        for s in range(0, len(used), chunk):
            sel = used[s:s + chunk]
            tok, a = trim(tokens[sel], at[sel])
            parts.append(F.log_softmax(_teacher_rows(teacher, tok, a, cols), -1))
    count = torch.zeros(len(tokens), dtype=torch.long)
    count[used] = at[used].sum(1)
    start = torch.zeros(len(tokens), dtype=torch.long)
    start[used] = count[used].cumsum(0) - count[used]
    logp = torch.cat(parts) if parts else torch.zeros(0, len(cols))
    return TeacherTable(logp, start, count)


def train_students(students: list[HookedTransformer],
                   data: list[tuple[Int[Tensor, "n p"], Bool[Tensor, "n p"]]],
                   number_ids: Tensor, cfg: StudentConfig, seed: int,
                   teachers: list[Teacher | TeacherFn] | None = None,
                   shuffle: list[bool] | None = None,
                   direction: dict[str, Tensor] | None = None,
                   theta0: list[dict[str, Tensor]] | None = None,
                   desc: str = "students",
                   attach: Callable[[torch.optim.Optimizer], object] | None = None,
                   ) -> tuple[list[dict[int, dict[str, Tensor]]], list[list[float]], list[list]]:
    """Train M students side by side, student i on ``data[i]`` (from ``teachers[i]`` in logit
    mode), as one stacked model; each is exactly as if trained alone by the same loop (its
    own batch generator seeded by ``seed``, its own mean loss, elementwise Adam).

    1. Each student's batches are drawn up front (the same generator calls, in the same
       order, as drawing them step by step).
    2. Logit mode: each teacher's number log-probabilities are computed once on the examples
       its students will draw (``teacher_table``); students that share a teacher object and a
       data tensor (the trait student, its cross-init and shuffled twins) share one table.
    3. Each step stacks the students' batches, drops the all-padding columns (``trim``),
       takes each student's mean loss (KL to its table's rows, or cross-entropy), and steps
       one Adam over the stack.

    Returns per student: state dicts at ``cfg.checkpoints`` (and the last step); every step's
    loss measured before that step's update (``[0]`` is the loss at step 0: zero means the
    data carried no signal); and, given ``direction`` (dT) and ``theta0`` (each student's
    initial weights), the recorder's per-step alignment rows. ``attach(optimizer)`` lets
    another hook see the optimizer (with one student, over that student's own parameters)."""
    m = len(students)
    shuffle = shuffle or [cfg.shuffle_targets] * m
    if cfg.mode == "logit" and (teachers is None or len(teachers) != m):
        raise ValueError("logit-mode distillation needs a teacher per student")
    gens = [torch.Generator().manual_seed(seed) for _ in range(m)]
    perms = [shuffle_perm(mask, g) if sh else None for (_, mask), g, sh in zip(data, gens, shuffle)]
    draws = [torch.stack([torch.randint(len(t), (cfg.batch,), generator=g)
                          for _ in range(cfg.steps)]) for (t, _), g in zip(data, gens)]
    ats = [_predicting(k) for _, k in data]
    tables: list[TeacherTable] = []
    if cfg.mode == "logit":
        shared: dict[tuple[int, int, int], list[int]] = {}
        for j, ((t, k), teacher) in enumerate(zip(data, teachers)):
            shared.setdefault((id(teacher), id(t), id(k)), []).append(j)
        by_student: dict[int, TeacherTable] = {}
        for group in shared.values():
            j = group[0]
            used = torch.unique(torch.cat([draws[i].flatten() for i in group]))
            table = teacher_table(teachers[j], data[j][0], ats[j], used, number_ids)
            by_student.update({i: table for i in group})
        tables = [by_student[j] for j in range(m)]
    P = _stacked(students)
    names = list(P)
    opt = torch.optim.Adam(_leaves(students, P, names), lr=cfg.lr, fused=True)
    rec = None
    if direction is not None:
        stacked = [n for n in names if n in direction]
        if m == 1:  # P holds views: the gradients live on the model's own parameters
            own = dict(students[0].named_parameters())
            rec = Recorder({n: own[n] for n in stacked}, {n: theta0[0][n] for n in stacked},
                           {n: direction[n] for n in stacked}, cfg.record_every).attach(opt)
        else:
            rec = Recorder(
                {n: P[n] for n in stacked},
                {n: torch.stack([t[n] for t in theta0]) for n in stacked},
                {n: direction[n].expand_as(P[n]) for n in stacked}, cfg.record_every,
                batched=True).attach(opt)
    if attach is not None:
        attach(opt)
    fast = _fast(students[0])
    saved: list[dict[int, dict[str, Tensor]]] = [{} for _ in range(m)]
    losses: list[list[float]] = [[] for _ in range(m)]
    for step in tqdm(range(1, cfg.steps + 1), desc=desc, leave=False):
        idx = [d[step - 1] for d in draws]
        tokens = pad_stack([t[i] for (t, _), i in zip(data, idx)], 0)
        mask = pad_stack([a[i] for a, i in zip(ats, idx)], False)
        tokens, mask = trim(tokens, mask)
        if cfg.mode == "sampled":
            per_model = hard_label_losses(P, tokens, mask, fast)
        else:
            # each student's mean KL to its table's rows over the number tokens (the
            # restriction applied in the unembedding), fused with its gradient
            xs = stack.residual_at(P, tokens, mask, **fast)
            w_u, b_u = P["unembed.W_U"][..., number_ids], P["unembed.b_U"][..., number_ids]
            kls = []
            for j, x in enumerate(xs):
                r = tables[j].rows(idx[j])
                if perms[j] is not None:  # each position takes another position's target
                    r = r[_perm_rows(perms[j][idx[j]], ats[j][idx[j]])]
                kls.append(stack.linear_kl(x, w_u[j], b_u[j], tables[j].logp, r))
            per_model = torch.stack(kls)
        for j, v in enumerate(per_model.tolist()):
            losses[j].append(v)
        opt.zero_grad()
        per_model.sum().backward()
        opt.step()
        if step in cfg.checkpoints or step == cfg.steps:
            states = stack.unstack({n: p.detach() for n, p in P.items()},
                                   students[0].state_dict())
            for j in range(m):
                saved[j][step] = states[j]
    _write_back(students, P)
    rows = [[_pick(r, j) for r in rec.rows] for j in range(m)] if rec else [[] for _ in range(m)]
    return saved, losses, rows


def _pick(row, j: int):
    """Model j's entry of a batched recorder row (every list holds one value per model)."""
    if isinstance(row, dict):
        return {k: _pick(v, j) for k, v in row.items()}
    return row[j] if isinstance(row, list) else row


def train_student(student: HookedTransformer, tokens: Int[Tensor, "n p"],
                  mask: Bool[Tensor, "n p"], number_ids: Tensor, cfg: StudentConfig, seed: int,
                  teacher: HookedTransformer | Teacher | TeacherFn | None = None,
                  desc: str = "student",
                  attach: Callable[[torch.optim.Optimizer], object] | None = None,
                  losses: list[float] | None = None,
                  ) -> dict[int, dict[str, Tensor]]:
    """One student (``train_students`` with M = 1): trains ``student`` in place and returns
    its state dicts at ``cfg.checkpoints``. ``attach(optimizer)`` lets a recorder hook the
    optimizer; ``losses`` (a list) receives every step's loss before that step's update."""
    if isinstance(teacher, HookedTransformer):
        teacher = Teacher(teacher)
    saved, step_losses, _ = train_students(
        [student], [(tokens, mask)], number_ids, cfg, seed,
        [teacher] if teacher is not None else None, desc=desc, attach=attach)
    if losses is not None:
        losses.extend(step_losses[0])
    return saved[0]
