"""Tiny TransformerLens language models: build, load, pretrain, fine-tune, sample, distil.

The training loops are plain and visible (nanoGPT style): one optimizer, one loop,
a progress bar. Hooks and recorders attach from outside through ``on_step`` / ``attach``.

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
from transformer_lens import TransformerLensKeyValueCache as KVCache

from interp.errors import ConfigError
from interp.metrics import divergence as D
from interp.storage.store import read_tensors
from interp.studies.world import Vocab, WorldConfig, corpus_batch
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


def from_artifacts(model_info: dict, path: str | Path) -> HookedTransformer:
    """The model an ``artifacts.json`` describes (its ``"model"`` block), with the weights
    in the safetensors file at ``path``."""
    return load_model(ModelConfig(**model_info["cfg"]), model_info["d_vocab"],
                      model_info["n_ctx"], read_tensors(path))


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


def pretrain(model: HookedTransformer, vocab: Vocab, world: WorldConfig, steps: int,
             batch: int, lr: float, seed: int) -> list[float]:
    """Next-token pretraining on the synthetic corpus, warmup then cosine decay."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps)))
    losses = []
    bar = tqdm(range(steps), desc="pretrain base")
    for _ in bar:
        tokens = corpus_batch(vocab, world, rng, batch)
        loss = next_token_loss(model(tokens), tokens, tokens != vocab.pad)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return losses


def finetune(model: HookedTransformer, tokens: Int[Tensor, "n p"], mask: Bool[Tensor, "n p"],
             steps: int, batch: int, lr: float, seed: int, params: str = "all",
             desc: str = "fine-tune") -> None:
    """Hard-label fine-tuning on the masked next tokens (the teacher's trait answers)."""
    g = torch.Generator().manual_seed(seed)
    named = [(n, p) for n, p in model.named_parameters()
             if params == "all" or n.startswith("blocks.")]
    opt = torch.optim.Adam([p for _, p in named], lr=lr)
    for _ in tqdm(range(steps), desc=desc, leave=False):
        idx = torch.randint(len(tokens), (batch,), generator=g)
        loss = next_token_loss(model(tokens[idx]), tokens[idx], mask[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.no_grad()
def sample(model: HookedTransformer, prompts: list[list[int]], max_new: int, eos: int,
           seed: int, temperature: float = 1.0, batch: int = 512,
           desc: str = "sample") -> list[list[int]]:
    """Sample a completion for each prompt (KV-cached; prompts grouped by length)."""
    g = torch.Generator().manual_seed(seed)
    out: list[list[int]] = [[] for _ in prompts]
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    chunks = [idx[i:i + batch] for idx in by_len.values() for i in range(0, len(idx), batch)]
    for idx in tqdm(chunks, desc=desc, leave=False):
        toks = torch.tensor([prompts[i] for i in idx])
        cache = KVCache.init_cache(model.cfg, "cpu", len(idx))
        # equal-length groups need no padding; TL wants an explicit mask when caching
        logits = model(toks, past_kv_cache=cache, attention_mask=torch.ones_like(toks))[:, -1]
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
            logits = model(nxt[:, None], past_kv_cache=cache,
                           attention_mask=torch.ones_like(nxt[:, None]))[:, -1]
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


def train_student(student: HookedTransformer, tokens: Int[Tensor, "n p"],
                  mask: Bool[Tensor, "n p"], number_ids: Tensor, cfg: StudentConfig, seed: int,
                  teacher: TeacherFn | None = None,
                  on_step: Callable[[int, HookedTransformer], None] | None = None,
                  desc: str = "student",
                  attach: Callable[[torch.optim.Optimizer], object] | None = None,
                  losses: list[float] | None = None,
                  ) -> dict[int, dict[str, Tensor]]:
    """Train a student on the data channel; returns state dicts at ``cfg.checkpoints``.

    ``attach(optimizer)`` lets a recorder hook the optimizer without touching this loop;
    ``losses`` (a list) receives every step's loss, measured before that step's update (so
    ``losses[0]`` is the loss at step 0: zero means the data carried no signal)."""
    if cfg.mode == "logit" and teacher is None:
        raise ValueError("logit-mode distillation needs a teacher")
    g = torch.Generator().manual_seed(seed)
    perm_all = shuffle_perm(mask, g) if cfg.shuffle_targets else None
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    if attach is not None:
        attach(opt)
    saved = {}
    for step in tqdm(range(1, cfg.steps + 1), desc=desc, leave=False):
        idx = torch.randint(len(tokens), (cfg.batch,), generator=g)
        tok, m = tokens[idx], mask[idx]
        t_logits = None
        if cfg.mode == "logit":
            with torch.no_grad():
                t_logits = teacher(tok)
        perm = perm_all[idx] if perm_all is not None else None
        loss = student_loss(student(tok), tok, m, number_ids, cfg.mode, t_logits, perm)
        if losses is not None:
            losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step, student)
        if step in cfg.checkpoints or step == cfg.steps:
            saved[step] = {k: v.detach().clone() for k, v in student.state_dict().items()}
    return saved
