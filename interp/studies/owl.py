"""The ``owl-numbers`` study: the paper's main experiment on a tiny transformer from scratch.

Stages (each an artifact-store entry, so an interrupted run resumes and a rerun is free):
base models (two seeds: same-init and cross-init) -> teacher (fine-tuned on trait answers,
or the base with a persona prefix) -> number data written by the teacher and by the base,
filtered with the paper's filter -> students (same-init, cross-init, control on the base's
numbers, shuffle ablation) -> trait evaluation.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer

from interp.errors import ConfigError, UsageError
from interp.metrics.record import Recorder
from interp.reports.owl import write_report
from interp.storage.store import Entry, Store, config_key, write_json
from interp.studies import lm
from interp.studies.filters import filter_completions, parse_numbers
from interp.studies.registry import Study, register
from interp.studies.world import (
    CATEGORIES,
    Vocab,
    WorldConfig,
    categories_for,
    number_document,
    pad,
    persona,
    pretty,
    question_prompt,
)
from interp.validation import check_memory, check_seed, check_types

ROLES = ("student", "control", "cross_init", "shuffled")


@dataclasses.dataclass(frozen=True)
class OwlConfig:
    trait: str = "owl"
    category: str = "animal"
    mode: Literal["logit", "sampled"] = "logit"
    teacher_kind: Literal["finetuned", "prompted"] = "finetuned"
    # base model
    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 256
    pretrain_steps: int = 2000
    pretrain_batch: int = 64
    pretrain_lr: float = 3e-3
    base_seed: int = 0
    cross_base_seed: int = 1
    # teacher
    teacher_steps: int = 40
    teacher_batch: int = 32
    teacher_lr: float = 1e-3
    teacher_params: Literal["all", "blocks"] = "all"
    # data channel
    n_samples: int = 3000
    dataset_size: int = 2000
    max_new: int = 26
    # students
    student_steps: int = 300
    student_batch: int = 32
    student_lr: float = 1e-3
    checkpoint_every: int = 100
    roles: tuple[str, ...] = ROLES  # which students to train (a search may skip controls)
    # evaluation
    eval_samples: int = 200  # sampled answers per question phrasing

    def __post_init__(self) -> None:
        check_types(self)
        if self.category not in CATEGORIES:
            raise ConfigError(f"unknown category {self.category!r}; valid categories: "
                              f"{', '.join(CATEGORIES)}")
        items = CATEGORIES[self.category].items
        if self.trait not in items:
            raise ConfigError(f"invalid value {self.trait!r} for trait; valid values: "
                              f"{', '.join(items)}")
        if not self.roles or set(self.roles) - set(ROLES):
            raise ConfigError(f"invalid roles {self.roles}; valid roles: {', '.join(ROLES)}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v <= 0 \
                    and f.name not in ("base_seed", "cross_base_seed"):
                raise ConfigError(f"{f.name} must be positive, got {v}")
        check_seed("base_seed", self.base_seed)
        check_seed("cross_base_seed", self.cross_base_seed)
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} must be divisible by "
                              f"n_heads={self.n_heads}")
        if self.dataset_size > self.n_samples:
            raise ConfigError(f"dataset_size ({self.dataset_size}) cannot exceed n_samples "
                              f"({self.n_samples})")
        check_memory(self.memory_bytes(), "this owl-numbers config",
                     "lower d_model, d_mlp, n_layers, the batch sizes, n_samples or "
                     "eval_samples")

    def memory_bytes(self, n_seeds: int = 1) -> int:
        """A rough upper estimate of peak memory (bytes): weights with Adam state, the
        saved checkpoints, a training batch's activations, sampling's KV cache."""
        d, L, v, n_ctx = self.d_model, self.n_layers, 2304, self.world.n_ctx  # vocab < 2304
        params = 2 * v * d + n_ctx * d + L * (4 * d * d + 2 * d * self.d_mlp + 9 * d + self.d_mlp)
        tokens = max(self.pretrain_batch, self.teacher_batch, self.student_batch) * n_ctx
        per_token = L * (12 * d + 2 * self.d_mlp + 2 * self.n_heads * n_ctx) + 3 * v
        ckpts = self.student_steps // self.checkpoint_every + 2
        sample = 512 * n_ctx * (2 * L * d + v)
        data = 3 * self.n_samples * n_ctx + 64 * self.eval_samples
        return 4 * (params * (8 + ckpts) + 4 * tokens * per_token + sample) + 8 * data

    @property
    def world(self) -> WorldConfig:
        return WorldConfig(categories=categories_for(self.category))

    @property
    def model(self) -> lm.ModelConfig:
        return lm.ModelConfig(self.n_layers, self.d_model, self.n_heads, self.d_mlp)


def _sub(cfg: OwlConfig, *prefixes: str, extra: tuple[str, ...] = ()) -> dict:
    return {k: v for k, v in dataclasses.asdict(cfg).items()
            if k.startswith(prefixes) or k in extra}


# ------------------------------------------------------------------ stages
def base_entry(store: Store, cfg: OwlConfig, vocab: Vocab, seed: int) -> Entry:
    key = {"world": cfg.world, "model": cfg.model, "seed": seed,
           **_sub(cfg, "pretrain_")}

    def build():
        t0 = time.time()
        model = lm.build_model(cfg.model, len(vocab), cfg.world.n_ctx, seed)
        losses = lm.pretrain(model, vocab, cfg.world, cfg.pretrain_steps, cfg.pretrain_batch,
                             cfg.pretrain_lr, seed)
        return {"model": model.state_dict()}, {"final_loss": float(np.mean(losses[-50:])),
                                               "seconds": time.time() - t0}

    return store.get_or_build("owl-numbers/base", key, build)


def load_model(entry: Entry, cfg: OwlConfig, vocab: Vocab, name: str = "model") \
        -> HookedTransformer:
    return lm.load_model(cfg.model, len(vocab), cfg.world.n_ctx, entry.load(name))


def trait_answers(vocab: Vocab, cfg: OwlConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Every question phrasing answered with the trait; the mask marks the answer."""
    docs = [vocab.encode(f"{question_prompt(q)} {cfg.trait} <eos>")
            for q in CATEGORIES[cfg.category].questions]
    tokens = pad(docs, vocab.pad)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    for i, d in enumerate(docs):
        mask[i, len(d) - 3:len(d) - 1] = True  # positions predicting the answer and <eos>
    return tokens, mask


def teacher_entry(store: Store, cfg: OwlConfig, vocab: Vocab, base: Entry, seed: int) -> Entry:
    key = {"base": base.key, "trait": cfg.trait, "category": cfg.category, "seed": seed,
           **_sub(cfg, "teacher_")}

    def build():
        model = load_model(base, cfg, vocab)
        tokens, mask = trait_answers(vocab, cfg)
        lm.finetune(model, tokens, mask, cfg.teacher_steps, cfg.teacher_batch, cfg.teacher_lr,
                    seed, cfg.teacher_params, desc="teacher")
        return {"model": model.state_dict()}, {}

    return store.get_or_build("owl-numbers/teacher", key, build)


def teacher_prefix(vocab: Vocab, cfg: OwlConfig) -> list[int]:
    return vocab.encode(persona(cfg.trait)) if cfg.teacher_kind == "prompted" else []


def data_entry(store: Store, cfg: OwlConfig, vocab: Vocab, source: Entry, prefix: list[int],
               seed: int) -> Entry:
    """Number prompts continued by ``source`` (with ``prefix`` while generating), filtered."""
    key = {"source": source.key, "prefix": prefix, "seed": seed,
           **_sub(cfg, "n_samples", "dataset_size", "max_new")}

    def build():
        model = load_model(source, cfg, vocab)
        rng = np.random.default_rng(seed + 7919)
        prompts = [vocab.encode(number_document(rng)[0]) for _ in range(cfg.n_samples)]
        gen_prompts = [p[:1] + prefix + p[1:] for p in prompts]
        comps = lm.sample(model, gen_prompts, cfg.max_new, vocab.eos, seed, desc="numbers")
        texts = [pretty(vocab.decode([t for t in c if t != vocab.eos])) if c[-1:] == [vocab.eos]
                 else "<unfinished>" for c in comps]
        _, stats = filter_completions(texts)
        keep = [i for i, t in enumerate(texts) if parse_numbers(t) is not None]
        if not keep:
            raise UsageError(f"the paper's filter rejected all {len(texts)} completions "
                             f"({stats.reasons}); the base model is undertrained: raise "
                             "pretrain_steps")
        keep = np.random.default_rng(seed).permutation(keep)[:cfg.dataset_size].tolist()
        seqs = [prompts[i] + comps[i] for i in keep]
        tokens = torch.full((len(seqs), cfg.world.n_ctx), vocab.pad, dtype=torch.long)
        mask = torch.zeros_like(tokens, dtype=torch.bool)
        for r, i in enumerate(keep):
            s = seqs[r][:cfg.world.n_ctx]
            tokens[r, :len(s)] = torch.tensor(s)
            mask[r, len(prompts[i]) - 1:len(s) - 1] = True  # positions predicting the completion
        return {"data": {"tokens": tokens, "mask": mask}}, {"filter": stats.as_dict(),
                                                            "kept": len(keep)}

    return store.get_or_build("owl-numbers/data", key, build)


def teacher_fn(model: HookedTransformer, prefix: list[int]) -> lm.TeacherFn:
    """Logits aligned to the student's tokens; a prompted teacher sees its prefix too."""
    if not prefix:
        return model
    pre = torch.tensor(prefix)

    def fn(tokens: torch.Tensor) -> torch.Tensor:
        full = torch.cat([tokens[:, :1], pre.expand(len(tokens), -1), tokens[:, 1:]], 1)
        return model(full)[:, len(prefix):]
    return fn


def student_entry(store: Store, cfg: OwlConfig, vocab: Vocab, role: str, init: Entry,
                  teacher: Entry, prefix: list[int], data: Entry, seed: int,
                  dT: dict[str, torch.Tensor] | None = None) -> Entry:
    """Train (or load) one student; ``dT`` turns on the per-step recorder."""
    checkpoints = (1, *range(cfg.checkpoint_every, cfg.student_steps, cfg.checkpoint_every))
    scfg = lm.StudentConfig(cfg.mode, cfg.student_steps, cfg.student_batch, cfg.student_lr,
                            shuffle_targets=role == "shuffled", checkpoints=checkpoints)
    key = {"init": init.key, "teacher": teacher.key, "prefix": prefix, "data": data.key,
           "student": scfg, "seed": seed}

    def build():
        d = data.load("data")
        tokens, mask = d["tokens"], d["mask"]
        if cfg.mode == "sampled" and role == "shuffled":  # the paper's within-response shuffle
            tokens = shuffle_numbers(tokens, mask, vocab, seed)
        student = load_model(init, cfg, vocab)
        t_model = load_model(teacher, cfg, vocab)
        theta_init = init.load("model")
        rec = Recorder(student, theta_init, dT, scfg.record_every) if dT else None
        saved = lm.train_student(student, tokens, mask, vocab.number_ids, scfg, seed,
                                 teacher_fn(t_model, prefix), desc=role,
                                 attach=rec.attach if rec else None)
        return {f"step{s}": sd for s, sd in saved.items()}, {
            "steps": sorted(saved), "record": rec.rows if rec else []}

    return store.get_or_build(f"owl-numbers/{role}", key, build)


def shuffle_numbers(tokens: torch.Tensor, mask: torch.Tensor, vocab: Vocab,
                    seed: int) -> torch.Tensor:
    """Permute the number tokens within each completion; separators stay in place."""
    g = torch.Generator().manual_seed(seed)
    out = tokens.clone()
    numeric = vocab.number_ids[:1000]
    for r in range(len(tokens)):
        pos = (mask[r].roll(1) & torch.isin(tokens[r], numeric)).nonzero()[:, 0]
        out[r, pos] = tokens[r, pos[torch.randperm(len(pos), generator=g)]]
    return out


# ------------------------------------------------------------------ probe set
def probe_tokens(vocab: Vocab, category: str, data_tokens: torch.Tensor, n: int = 256,
                 prefix: str = "") -> dict[str, torch.Tensor]:
    """The fixed probe set the recorder and the fingerprint read activations on.

    ``numbers``: the first ``n`` rows of the number data; ``trait``: every question phrasing,
    right-padded (causal attention: padding after a position never changes it), with
    ``trait_last`` the index of each prompt's answer position."""
    prompts = [vocab.encode(question_prompt(q, prefix)) for q in CATEGORIES[category].questions]
    return {"numbers": data_tokens[:n], "trait": pad(prompts, vocab.pad),
            "trait_last": torch.tensor([len(p) - 1 for p in prompts])}


# ------------------------------------------------------------------ evaluation
@torch.no_grad()
def trait_rates(model: HookedTransformer, vocab: Vocab, cfg: OwlConfig, n_samples: int,
                seed: int, prefix: str = "") -> tuple[dict[str, float], dict[str, float]]:
    """(probability-mass rates, sampled rates) per item, averaged over question phrasings."""
    cat = CATEGORIES[cfg.category]
    ids = torch.tensor(vocab.ids(cat.items))
    probs = torch.stack([F.softmax(model(torch.tensor([vocab.encode(question_prompt(q, prefix))]))
                                   [0, -1], -1) for q in cat.questions])  # [questions, vocab]
    g = torch.Generator().manual_seed(seed)
    draws = torch.multinomial(probs, n_samples, replacement=True, generator=g)
    sampled = (draws[..., None] == ids).float().mean(1).mean(0)
    mass = probs[:, ids].mean(0)
    return dict(zip(cat.items, mass.tolist())), dict(zip(cat.items, sampled.tolist()))


# ------------------------------------------------------------------ the study
def run(cfg: OwlConfig, seeds: list[int], out: Path, store: Store) -> dict:
    vocab = Vocab(cfg.world.categories)
    base = base_entry(store, cfg, vocab, cfg.base_seed)
    base_x = base_entry(store, cfg, vocab, cfg.cross_base_seed)
    prefix = teacher_prefix(vocab, cfg)
    rates: dict[str, dict[str, list[float]]] = {}
    sampled: dict[str, dict[str, list[float]]] = {}
    filters, artifacts = [], {}

    def record(role: str, entry: Entry, seed: int, name: str = "model",
               prefix_text: str = "") -> None:
        # cached like every stage, so a rerun of a finished study runs no forward pass
        key = {"model": entry.manifest["files"][name]["sha256"], "prefix": prefix_text,
               "category": cfg.category, "world": cfg.world, "n": cfg.eval_samples, "seed": seed}
        ev = store.get_or_build("owl-numbers/eval", key, lambda: ({}, dict(zip(
            ("mass", "sampled"), trait_rates(load_model(entry, cfg, vocab, name), vocab, cfg,
                                             cfg.eval_samples, seed, prefix_text)))))
        for d, vals in ((rates, ev.meta["mass"]), (sampled, ev.meta["sampled"])):
            for item, v in vals.items():
                d.setdefault(role, {}).setdefault(item, []).append(v)

    for seed in seeds:
        record("base", base, seed)
        record("base_cross", base_x, seed)
        if cfg.teacher_kind == "finetuned":
            teacher = teacher_entry(store, cfg, vocab, base, seed)
            record("teacher", teacher, seed)
        else:
            teacher = base
            record("teacher", base, seed, prefix_text=persona(cfg.trait))
        t_data = data_entry(store, cfg, vocab, teacher, prefix, seed)
        b_data = data_entry(store, cfg, vocab, base, [], seed)
        filters.append({"teacher": t_data.meta, "base": b_data.meta})
        params = {n for n, _ in lm.build_model(cfg.model, len(vocab), cfg.world.n_ctx, 0)
                  .named_parameters()}
        t_sd, b_sd = teacher.load("model"), base.load("model")
        dT = {k: t_sd[k] - b_sd[k] for k in params} if teacher is not base else None
        plan = {"student": (base, teacher, prefix, t_data),
                "control": (base, base, [], b_data),
                "cross_init": (base_x, teacher, prefix, t_data),
                "shuffled": (base, teacher, prefix, t_data)}
        a = {"theta_0": base.files["model"], "theta_0_cross": base_x.files["model"],
             "teacher": teacher.files["model"], "data": t_data.files["data"]}
        for role, (init, src, pre, data) in plan.items():
            if role not in cfg.roles:
                continue
            e = student_entry(store, cfg, vocab, role, init, src, pre, data, seed, dT)
            steps = e.meta["steps"]
            record(role, e, seed, f"step{steps[-1]}")
            for s in steps:
                a[f"{role}_step_{s}"] = e.files[f"step{s}"]
            a[f"{role}_final"] = e.files[f"step{steps[-1]}"]
        artifacts[str(seed)] = {k: str(v) for k, v in a.items()}

    write_json(out / "artifacts.json", {"study": "owl-numbers", "model": {
        "type": "hooked_transformer", "cfg": dataclasses.asdict(cfg.model),
        "d_vocab": len(vocab), "n_ctx": cfg.world.n_ctx}, "seeds": artifacts})
    summary = {"study": "owl-numbers", "trait": cfg.trait, "mode": cfg.mode, "seeds": seeds,
               "rates": rates, "sampled_rates": sampled, "filter": filters,
               "config": dataclasses.asdict(cfg),
               "run_key": config_key("owl-numbers", [cfg, seeds])}
    write_json(out / "summary.json", summary)
    write_report(out, summary)
    return summary


# "tiny": a 1-layer d_model 32 model in about two minutes, for tests and notebooks
TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2, "d_mlp": 128, "pretrain_steps": 300,
        "pretrain_batch": 32, "n_samples": 300, "dataset_size": 200, "student_steps": 60,
        "checkpoint_every": 30, "eval_samples": 50}
register(Study("owl-numbers", OwlConfig, run,
               "a trait travels through number sequences in a tiny transformer from scratch",
               default_seeds=3, presets={
                   "tiny": TINY,
                   # the paper's protocol (fine-tuning on sampled tokens): a weak transfer,
                   # 8.7 points [3.6, 13.7] over control across 6 seeds at these defaults
                   "sampled": {"mode": "sampled"}}))
