"""The ``owl-numbers`` study: the paper's main experiment on a tiny transformer from scratch.

Stages (each an artifact-store entry, so an interrupted run resumes and a rerun is free; each
key holds a digest of the code that computes it, ``CODE``): base models (same-init and
cross-init; one pair for all seeds with ``replicate=data``, a pair per seed with
``replicate=base``) -> teachers (fine-tuned on trait answers, or the base with a persona
prefix): the trait teacher and a different-trait teacher (another item of the category,
rotated over seeds) -> number data written by each teacher and by the base, filtered with
the paper's filter -> students: ``student`` (same-init, the trait teacher's numbers),
``control_other`` (same-init, the different-trait teacher's numbers, distilled exactly like
the student's), ``control_base`` (same-init, the base's own numbers), ``cross_init`` (a second
base, the trait teacher's numbers), ``shuffled`` (targets shuffled within each completion)
-> trait evaluation on both question splits, and each student's output movement from its
base (restricted KL on its distillation data) with its loss at step 0.

The control a mode's headline subtracts is ``CONTROL_OF_MODE[mode]``: in logit mode the
base's own numbers carry no signal (distilling the base into itself starts at zero loss), so
the control is the different-trait teacher; in sampled mode hard labels move the student, so
it is the base's numbers. ``artifacts.json`` names it (``control_role``) and aliases its files
as ``control_step_*`` / ``control_final``.

Held-out questions (the API analyses use to select on one split and measure on the other):

- ``interp.studies.world.CATEGORIES[category].split(name)``: the question phrasings of
  ``"select"`` (the teacher is fine-tuned on these; choose features, hooks, k on them),
  ``"heldout"`` (never in fine-tuning; measure on these) or ``"all"``. Every phrasing is in
  pretraining.
- ``probe_tokens(vocab, category, data_tokens, n=256, prefix="", split="all")``: the probe set
  (``numbers``, ``trait``, ``trait_last``) with the trait prompts of that split only.
- ``trait_rates(model, vocab, cfg, n_samples, seed, prefix="", split="heldout")``: rates on a
  split. The summary's ``rates`` / ``sampled_rates`` are on ``heldout`` (the headline);
  ``rates_select`` / ``sampled_rates_select`` on the fine-tuning phrasings.

Owns: the owl-numbers stages, its probe set and evaluation. Must not import: analysis, the CLIs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp import environ, requested_workers
from interp.errors import ConfigError, UsageError
from interp.metrics import divergence as D
from interp.metrics.record import Recorder
from interp.reports.owl import write_report
from interp.storage.store import (
    Entry,
    NotCached,
    Store,
    code_digest,
    config_key,
    write_json,
)
from interp.studies import filters, lm, mitigations, stack, world
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

log = logging.getLogger(__name__)
ROLES = ("student", "control_other", "control_base", "cross_init", "shuffled")
CONTROL_OF_MODE = {"logit": "control_other", "sampled": "control_base"}
REPLICATE_STRIDE = 1000  # replicate=base: seed s pretrains bases base_seed + 1000 s, ...
CI_COVERS = {"data": "teacher data, student and teacher-batch noise over seeds; one base "
                     "pair (same-init and cross-init) shared by every seed",
             "base": "independent base pairs: each seed pretrains its own same-init and "
                     "cross-init bases, so the CI covers initialization, data and student"}


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
    # not fewer: a 1500-step schedule ends at a held-out loss of 1.551 against 2000 steps'
    # 1.475 (analyses/pretrain_curve.py, runs/pretrain_curve.md)
    pretrain_steps: int = 2000
    pretrain_batch: int = 64
    pretrain_lr: float = 3e-3
    base_seed: int = 0
    cross_base_seed: int = 1
    # "data": one base pair for every seed; "base": each seed its own pair (seed-derived)
    replicate: Literal["data", "base"] = "data"
    # the frame of number prompts ("neutral" shares no token with the trait questions' frame;
    # a world setting: it changes pretraining)
    number_frame: Literal["qa", "neutral"] = "qa"
    # teacher
    teacher_steps: int = 40
    teacher_batch: int = 32
    teacher_lr: float = 1e-3
    teacher_params: Literal["all", "blocks", "attn_out", "steer", "bos"] = "all"  # lm.TUNED
    # data channel
    n_samples: int = 3000
    dataset_size: int = 2000
    max_new: int = 26
    # students
    student_steps: int = 300
    student_batch: int = 32
    student_lr: float = 1e-3
    checkpoint_every: int = 100
    mask_first: bool = False  # leave the first completion position out of the student's loss
    roles: tuple[str, ...] = ROLES  # which students to train (a search may skip controls)
    # a defence applied to every student's distillation (interp.studies.mitigations: NAME,
    # NAME:VALUE, several joined by +); "none" trains exactly as before
    mitigation: str = "none"
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
        if (self.base_seed - self.cross_base_seed) % REPLICATE_STRIDE == 0:
            raise ConfigError(f"base_seed and cross_base_seed must differ (modulo "
                              f"{REPLICATE_STRIDE}), got {self.base_seed} and "
                              f"{self.cross_base_seed}")
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
        mits = dict(mitigations.parse(self.mitigation, self.mode))
        if "project" in mits and self.teacher_kind != "finetuned":
            raise ConfigError("mitigation project needs a weight direction: use "
                              "teacher_kind=finetuned")
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
        return WorldConfig(categories=categories_for(self.category),
                           number_frame=self.number_frame)

    @property
    def model(self) -> lm.ModelConfig:
        return lm.ModelConfig(self.n_layers, self.d_model, self.n_heads, self.d_mlp)

    def base_seeds(self, seed: int) -> tuple[int, int]:
        """(same-init, cross-init) base seeds of study seed ``seed``."""
        if self.replicate == "data":
            return self.base_seed, self.cross_base_seed
        return (self.base_seed + REPLICATE_STRIDE * seed,
                self.cross_base_seed + REPLICATE_STRIDE * seed)

    def other_item(self, seed: int) -> str:
        """The different-trait teacher's item for ``seed`` (rotated over the others)."""
        others = [i for i in CATEGORIES[self.category].items if i != self.trait]
        return others[seed % len(others)]


def _sub(cfg: OwlConfig, *prefixes: str, extra: tuple[str, ...] = ()) -> dict:
    return {k: v for k, v in dataclasses.asdict(cfg).items()
            if k.startswith(prefixes) or k in extra}


# ------------------------------------------------------------------ stages
def base_entry(store: Store, cfg: OwlConfig, vocab: Vocab, seed: int) -> Entry:
    key = {"world": cfg.world, "model": cfg.model, "seed": seed, "code": code_digest(*CODE["base"]),
           **_sub(cfg, "pretrain_")}

    def build():
        t0 = time.time()
        model = lm.build_model(cfg.model, len(vocab), cfg.world.n_ctx, seed)
        tokens: list[int] = []
        losses = lm.pretrain_stack([model], vocab, cfg.world, cfg.pretrain_steps,
                                   cfg.pretrain_batch, cfg.pretrain_lr, [seed], tokens)
        return {"model": model.state_dict()}, {
            "final_loss": float(np.mean([row[0] for row in losses[-50:]])),
            "seconds": time.time() - t0, "tokens": tokens[0], "d_vocab": len(vocab)}

    return store.get_or_build("owl-numbers/base", key, build)


# ------------------------------------------------------------------ parallel prebuild
def _build_bases(cfg: OwlConfig, seed: int, root: str) -> None:
    base_entry(Store(root), cfg, Vocab(cfg.world.categories), seed)


def _build_seed(cfg: OwlConfig, seed: int, root: str) -> None:
    with tempfile.TemporaryDirectory(prefix="owl-seed-") as tmp:
        run(cfg, [seed], Path(tmp), Store(root), workers=1)


def prebuild(cfg: OwlConfig, seeds: list[int], store: Store, workers: int) -> None:
    """Build the study's independent stages on ``workers`` processes before the main pass:
    1. every base (same-init and cross-init) one per worker; 2. each seed's chain (teachers,
    data, students, evaluations) one per worker, by running the study for that seed alone.
    The main pass then finds every entry in the store. A worker that fails is reported
    and its stages are left to the main pass, which raises the error where it belongs."""
    import concurrent.futures as cf
    import multiprocessing as mp

    from tqdm.auto import tqdm

    bases = sorted({b for s in seeds for b in cfg.base_seeds(s)})
    tasks = [(_build_bases, bases), (_build_seed, seeds)]
    # the workers' own bars would interleave (this bar counts tasks); their thread count is
    # the main process's, so that every process keys its entries alike
    with environ(TQDM_DISABLE="1", INTERP_THREADS=str(torch.get_num_threads())), \
            cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        for fn, items in tasks:
            futures = [pool.submit(fn, cfg, i, str(store.root)) for i in items]
            for f in tqdm(cf.as_completed(futures), total=len(futures),
                          desc=f"{fn.__name__[1:]} on {workers} workers"):
                if f.exception() is not None:
                    log.warning("a prebuild worker failed (%s); the main pass redoes "
                                "its stages", f.exception())


def load_model(entry: Entry, cfg: OwlConfig, vocab: Vocab, name: str = "model") \
        -> HookedTransformer:
    return lm.load_model(cfg.model, len(vocab), cfg.world.n_ctx, entry.load(name))


def trait_answers(vocab: Vocab, cfg: OwlConfig, item: str | None = None) \
        -> tuple[torch.Tensor, torch.Tensor]:
    """Every fine-tuning ("select") phrasing answered with ``item`` (default: the trait); the
    mask marks the answer. Held-out phrasings never appear here."""
    item = item or cfg.trait
    docs = [vocab.encode(f"{question_prompt(q)} {item} <eos>")
            for q in CATEGORIES[cfg.category].split("select")]
    tokens = pad(docs, vocab.pad)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    for i, d in enumerate(docs):
        mask[i, len(d) - 3:len(d) - 1] = True  # positions predicting the answer and <eos>
    return tokens, mask


def teacher_entry(store: Store, cfg: OwlConfig, vocab: Vocab, base: Entry, seed: int,
                  item: str | None = None) -> Entry:
    """A teacher fine-tuned to answer ``item`` (default: the trait); the different-trait
    control's teacher is this with another item: same steps, lr, phrasings and batches."""
    item = item or cfg.trait
    key = {"base": base.key, "trait": item, "category": cfg.category, "seed": seed,
           "code": code_digest(*CODE["teacher"]), **_sub(cfg, "teacher_")}

    def build():
        model = load_model(base, cfg, vocab)
        tokens, mask = trait_answers(vocab, cfg, item)
        lm.finetune(model, tokens, mask, cfg.teacher_steps, cfg.teacher_batch, cfg.teacher_lr,
                    seed, cfg.teacher_params, desc="teacher")
        return {"model": model.state_dict()}, {}

    return store.get_or_build("owl-numbers/teacher", key, build)


def teacher_prefix(vocab: Vocab, cfg: OwlConfig, item: str | None = None) -> list[int]:
    return vocab.encode(persona(item or cfg.trait)) if cfg.teacher_kind == "prompted" else []


def data_entry(store: Store, cfg: OwlConfig, vocab: Vocab, source: Entry, prefix: list[int],
               seed: int) -> Entry:
    """Number prompts continued by ``source`` (with ``prefix`` while generating), filtered."""
    key = {"source": source.key, "prefix": prefix, "seed": seed, "frame": cfg.number_frame,
           "code": code_digest(*CODE["data"]),
           **_sub(cfg, "n_samples", "dataset_size", "max_new")}

    def build():
        model = load_model(source, cfg, vocab)
        rng = np.random.default_rng(seed + 7919)
        prompts = [vocab.encode(number_document(rng, frame=cfg.number_frame)[0])
                   for _ in range(cfg.n_samples)]
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
        # a prompted teacher reads each row with its prefix inserted: leave room for it
        width = cfg.world.n_ctx - len(prefix)
        tokens = torch.full((len(seqs), width), vocab.pad, dtype=torch.long)
        mask = torch.zeros_like(tokens, dtype=torch.bool)
        for r, i in enumerate(keep):
            s = seqs[r][:width]
            tokens[r, :len(s)] = torch.tensor(s)
            mask[r, len(prompts[i]) - 1:len(s) - 1] = True  # positions predicting the completion
        return {"data": {"tokens": tokens, "mask": mask}}, {"filter": stats.as_dict(),
                                                            "kept": len(keep)}

    return store.get_or_build("owl-numbers/data", key, build)


def drop_first(mask: Bool[Tensor, "n p"]) -> Bool[Tensor, "n p"]:
    """The mask without each row's first masked position (the first completion token's
    prediction, the slot a fine-tuned teacher answered trait questions in)."""
    return mask & (mask.cumsum(1) > 1)


def student_mask(cfg: OwlConfig, mask: Bool[Tensor, "n p"]) -> Bool[Tensor, "n p"]:
    return drop_first(mask) if cfg.mask_first else mask


def teacher_fn(model: HookedTransformer, prefix: list[int]) -> lm.Teacher:
    """Logits aligned to the student's tokens; a prompted teacher sees its prefix too."""
    return lm.Teacher(model, tuple(prefix))


def student_entry(store: Store, cfg: OwlConfig, vocab: Vocab, role: str, init: Entry,
                  teacher: Entry, prefix: list[int], data: Entry, seed: int,
                  dT: dict[str, torch.Tensor] | None = None) -> Entry:
    """One student trained alone (a stack of one; the study trains a seed's together)."""
    return student_entries(store, cfg, vocab, {role: (init, teacher, prefix, data)}, seed,
                           dT)[role]


def student_entries(store: Store, cfg: OwlConfig, vocab: Vocab,
                    plan: dict[str, tuple[Entry, Entry, list[int], Entry]], seed: int,
                    dT: dict[str, torch.Tensor] | None = None) -> dict[str, Entry]:
    """Train (or load) a seed's students, ``plan[role] = (init, teacher, prefix, data)``, as
    one stack (``lm.train_students``); ``dT`` turns on the per-step recorder. Each role's
    meta holds its loss at step 0 (``loss_step0``): above zero when the data carried signal."""
    checkpoints = (1, *range(cfg.checkpoint_every, cfg.student_steps, cfg.checkpoint_every))
    scfg = lm.StudentConfig(cfg.mode, cfg.student_steps, cfg.student_batch, cfg.student_lr,
                            checkpoints=checkpoints)
    roles = list(plan)

    def key(role: str) -> dict:
        init, teacher, prefix, data = plan[role]
        return {"init": init.key, "teacher": teacher.key, "prefix": prefix, "data": data.key,
                "student": dataclasses.replace(scfg, shuffle_targets=role == "shuffled"),
                "seed": seed, "mask_first": cfg.mask_first, "stack": roles,
                # the channel the students are distilled on (a study may narrow it)
                "channel_ids": hashlib.sha256(
                    vocab.number_ids.numpy().astype("int64").tobytes()).hexdigest()[:16],
                "code": code_digest(*CODE["student"])}

    def build():
        data, students, teachers, theta0 = [], [], [], []
        # roles that share a teacher or a dataset get the same objects, so that the trainer
        # computes each teacher's targets on each dataset once (``lm.train_students``)
        loaded_data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        loaded_teachers: dict[tuple, lm.Teacher] = {}
        for role, (init, teacher, prefix, d_entry) in plan.items():
            if d_entry.key not in loaded_data:
                d = d_entry.load("data")
                loaded_data[d_entry.key] = (d["tokens"], student_mask(cfg, d["mask"]))
            tokens, mask = loaded_data[d_entry.key]
            if cfg.mode == "sampled" and role == "shuffled":  # the paper's within-response shuffle
                tokens = shuffle_numbers(tokens, mask, vocab, seed)
            data.append((tokens, mask))
            students.append(load_model(init, cfg, vocab))
            t_key = (teacher.key, tuple(prefix))
            if t_key not in loaded_teachers:
                loaded_teachers[t_key] = lm.Teacher(load_model(teacher, cfg, vocab), tuple(prefix))
            teachers.append(loaded_teachers[t_key])
            theta0.append(init.load("model"))
        saved, losses, rows = lm.train_students(
            students, data, vocab.number_ids, scfg, seed, teachers,
            shuffle=[r == "shuffled" for r in roles], direction=dT, theta0=theta0,
            desc=f"students (seed {seed})")
        return [({f"step{s}": sd for s, sd in saved[i].items()}, {
            "steps": sorted(saved[i]), "record": rows[i], "loss_step0": losses[i][0],
            "loss_final": float(np.mean(losses[i][-10:]))}) for i in range(len(roles))]

    entries = store.get_or_build_group([(f"owl-numbers/{r}", key(r)) for r in roles], build)
    return dict(zip(roles, entries))


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


@torch.no_grad()
def kl_from_base(model: HookedTransformer, base: HookedTransformer,
                 tokens: Int[Tensor, "n p"], mask: Bool[Tensor, "n p"],
                 number_ids: Tensor, batch: int = 256) -> float:
    """Mean KL(model || base) of the next-token distributions restricted to the number
    channel, at the masked positions: how far the outputs moved from the base's on the data.
    (Both models as one stack, logits only at the masked positions and number columns.)"""
    P = stack.stack([model.state_dict(), base.state_dict()],
                    [n for n, _ in model.named_parameters()])
    fast = lm._fast(model)
    total, count = 0.0, 0
    for i in range(0, len(tokens), batch):
        tok, m = lm.trim(tokens[i:i + batch][None], mask[i:i + batch][None])
        logits, _ = stack.logits_at(P, tok.expand(2, -1, -1), m.expand(2, -1, -1),
                                    **fast, cols=number_ids)
        logp = F.log_softmax(logits, -1)
        n = len(logp) // 2
        total += float(D.kl(logp[:n], logp[n:]).sum())
        count += n
    return total / max(count, 1)


def signal_entry(store: Store, cfg: OwlConfig, vocab: Vocab, role_entry: Entry, name: str,
                 init: Entry, data: Entry, n: int = 512) -> Entry:
    """The trained model's output movement from its base on its own distillation data."""
    key = {"model": role_entry.manifest["files"][name]["sha256"],
           "base": init.manifest["files"]["model"]["sha256"], "data": data.key, "n": n,
           "mask_first": cfg.mask_first, "code": code_digest(*CODE["signal"])}

    def build():
        d = data.load("data")
        mask = student_mask(cfg, d["mask"])[:n]
        return {}, {"kl_from_base": kl_from_base(
            load_model(role_entry, cfg, vocab, name), load_model(init, cfg, vocab),
            d["tokens"][:n], mask, vocab.number_ids)}

    return store.get_or_build("owl-numbers/signal", key, build)


# ------------------------------------------------------------------ probe set
def probe_tokens(vocab: Vocab, category: str, data_tokens: torch.Tensor, n: int = 256,
                 prefix: str = "", split: str = "all") -> dict[str, torch.Tensor]:
    """The fixed probe set the recorder and the fingerprint read activations on.

    ``numbers``: the first ``n`` rows of the number data; ``trait``: the question phrasings
    of ``split`` ("select": the teacher's fine-tuning phrasings, where analyses may select;
    "heldout": never fine-tuned on, for measuring; "all"), right-padded (causal attention:
    padding after a position never changes it), with ``trait_last`` the index of each
    prompt's answer position."""
    try:
        questions = CATEGORIES[category].split(split)
    except ValueError as e:
        raise UsageError(str(e)) from None
    prompts = [vocab.encode(question_prompt(q, prefix)) for q in questions]
    return {"numbers": data_tokens[:n], "trait": pad(prompts, vocab.pad),
            "trait_last": torch.tensor([len(p) - 1 for p in prompts])}


# ------------------------------------------------------------------ evaluation
@torch.no_grad()
def trait_rates(model: HookedTransformer, vocab: Vocab, cfg: OwlConfig, n_samples: int,
                seed: int, prefix: str = "", split: str = "heldout") \
        -> tuple[dict[str, float], dict[str, float]]:
    """(probability-mass rates, sampled rates) per item, averaged over the question phrasings
    of ``split`` (default: the held-out phrasings the teacher never saw)."""
    cat = CATEGORIES[cfg.category]
    ids = torch.tensor(vocab.ids(cat.items))
    probs = torch.stack([F.softmax(model(torch.tensor([vocab.encode(question_prompt(q, prefix))]))
                                   [0, -1], -1) for q in cat.split(split)])  # [questions, vocab]
    g = torch.Generator().manual_seed(seed)
    draws = torch.multinomial(probs, n_samples, replacement=True, generator=g)
    sampled = (draws[..., None] == ids).float().mean(1).mean(0)
    mass = probs[:, ids].mean(0)
    return dict(zip(cat.items, mass.tolist())), dict(zip(cat.items, sampled.tolist()))


STACK = (stack.residual, stack.logits_at, stack.per_model_mean, stack.next_token_rows,
         stack.stack, stack.unstack, stack._ln, stack.pack, stack.residual_at,
         stack._chunked_linear, stack._ChunkedLinear, stack.LinearCrossEntropy,
         stack.linear_cross_entropy)  # the stacked training forward

# the base's code that the transfer study's base digest lists too
BASE_SHARED = (lm._predicting, lm.hard_label_losses, lm._stacked, lm._write_back, *STACK,
               world.Vocab, world.corpus_batch, world.trait_document, world.number_document,
               world.number_sequence, world.join_numbers, world.question_prompt,
               world.persona, world.pad)
# the code each stage's key digests (the builder and what it calls): editing any of these
# rebuilds that stage and, through the keys, every stage downstream of it
CODE = {
    "base": (base_entry, lm.build_model, lm.pretrain_stack, lm.pad_stack, *BASE_SHARED,
             world.CorpusIds, world.corpus_ids, world.corpus_batch_ids),
    "teacher": (teacher_entry, trait_answers, lm.finetune, lm.hard_label_losses, lm._stacked,
                lm._predicting, *STACK),
    "data": (data_entry, lm.sample, world.number_document, world.number_sequence,
             world.pretty, filters.filter_completions, filters.parse_numbers),
    "student": (student_entries, student_mask, drop_first, shuffle_numbers, lm.train_students,
                lm.trim, lm.TeacherTable, lm.teacher_table, lm._teacher_rows, lm._perm_rows,
                lm._pick, lm.shuffle_perm, lm.pad_stack,
                lm._predicting, lm.hard_label_losses, lm._stacked, lm._write_back, *STACK,
                stack.LinearKL, stack.linear_kl, D.kl, D.restricted_log_softmax, Recorder),
    "signal": (signal_entry, kl_from_base, student_mask, drop_first, D.kl, lm.trim, lm._fast,
               *STACK),
    "eval": (trait_rates, world.question_prompt, world.Category),
}


# ------------------------------------------------------------------ the study
def run(cfg: OwlConfig, seeds: list[int], out: Path, store: Store,
        workers: int | None = None) -> dict:
    """Run the study (``workers`` processes: default ``INTERP_WORKERS``, see ``prebuild``)."""
    workers = requested_workers() if workers is None else workers
    if workers > 1:
        try:  # a finished study needs no workers: the main pass alone, from the store
            with store.cached_only():
                return _run(cfg, seeds, out, store)
        except NotCached:
            prebuild(cfg, seeds, store, workers)
    return _run(cfg, seeds, out, store)


def _run(cfg: OwlConfig, seeds: list[int], out: Path, store: Store) -> dict:
    vocab = Vocab(cfg.world.categories)
    splits = {"rates": "heldout", "rates_select": "select"}
    rates: dict[str, dict[str, dict[str, list[float]]]] = {}
    signal: dict[str, dict[str, list[float]]] = {}
    filters_, artifacts, base_seeds, control_items = [], {}, [], []
    control = CONTROL_OF_MODE[cfg.mode]

    def record(role: str, entry: Entry, seed: int, name: str = "model",
               prefix_text: str = "") -> None:
        # cached like every stage, so a rerun of a finished study runs no forward pass
        key = {"model": entry.manifest["files"][name]["sha256"], "prefix": prefix_text,
               "category": cfg.category, "world": cfg.world, "n": cfg.eval_samples, "seed": seed,
               "code": code_digest(*CODE["eval"])}

        def build():
            model = load_model(entry, cfg, vocab, name)
            return {}, {split: dict(zip(("mass", "sampled"), trait_rates(
                model, vocab, cfg, cfg.eval_samples, seed, prefix_text, split)))
                for split in ("heldout", "select")}

        ev = store.get_or_build("owl-numbers/eval", key, build)
        for out_key, split in splits.items():
            for kind, vals in ev.meta[split].items():
                dest = rates.setdefault(("sampled_" if kind == "sampled" else "") + out_key, {})
                for item, v in vals.items():
                    dest.setdefault(role, {}).setdefault(item, []).append(v)

    for seed in seeds:
        b_seed, x_seed = cfg.base_seeds(seed)
        base_seeds.append([b_seed, x_seed])
        base = base_entry(store, cfg, vocab, b_seed)
        base_x = base_entry(store, cfg, vocab, x_seed)
        other = cfg.other_item(seed)
        control_items.append(other)
        record("base", base, seed)
        record("base_cross", base_x, seed)
        prefix, o_prefix = teacher_prefix(vocab, cfg), teacher_prefix(vocab, cfg, other)
        if cfg.teacher_kind == "finetuned":
            teacher = teacher_entry(store, cfg, vocab, base, seed)
            teacher_o = teacher_entry(store, cfg, vocab, base, seed, other)
            record("teacher", teacher, seed)
            record("teacher_other", teacher_o, seed)
        else:  # the base with a persona prefix: no weight direction
            teacher = teacher_o = base
            record("teacher", base, seed, prefix_text=persona(cfg.trait))
            record("teacher_other", base, seed, prefix_text=persona(other))
        t_data = data_entry(store, cfg, vocab, teacher, prefix, seed)
        o_data = data_entry(store, cfg, vocab, teacher_o, o_prefix, seed)
        b_data = data_entry(store, cfg, vocab, base, [], seed)
        filters_.append({"teacher": t_data.meta, "teacher_other": o_data.meta,
                         "base": b_data.meta})
        params = {n for n, _ in lm.build_model(cfg.model, len(vocab), cfg.world.n_ctx, 0)
                  .named_parameters()}
        t_sd, b_sd = teacher.load("model"), base.load("model")
        dT = {k: t_sd[k] - b_sd[k] for k in params} if teacher is not base else None
        plan = {"student": (base, teacher, prefix, t_data),
                "control_other": (base, teacher_o, o_prefix, o_data),
                "control_base": (base, base, [], b_data),
                "cross_init": (base_x, teacher, prefix, t_data),
                "shuffled": (base, teacher, prefix, t_data)}
        a = {"theta_0": base.files["model"], "theta_0_cross": base_x.files["model"],
             "teacher": teacher.files["model"], "teacher_other": teacher_o.files["model"],
             "data": t_data.files["data"], "data_other": o_data.files["data"],
             "data_base": b_data.files["data"]}
        plan = {role: v for role, v in plan.items() if role in cfg.roles}
        if cfg.mitigation == "none":  # a seed's students as one stack
            students = student_entries(store, cfg, vocab, plan, seed, dT)
        else:  # each with the defence applied in its own loop
            students = {role: mitigations.student_entry(store, cfg, vocab, role, init, src, pre,
                                                        data, seed, dT, base_data=b_data)
                        for role, (init, src, pre, data) in plan.items()}
        for role, (init, _, _, data) in plan.items():
            e = students[role]
            steps = e.meta["steps"]
            final = f"step{steps[-1]}"
            record(role, e, seed, final)
            sig = signal_entry(store, cfg, vocab, e, final, init, data)
            signal.setdefault(role, {}).setdefault("loss_step0", []).append(e.meta["loss_step0"])
            signal[role].setdefault("kl_from_base", []).append(sig.meta["kl_from_base"])
            names = [role] + (["control"] if role == control else [])
            for name in names:  # the mode's control is also "control_*" for the analyses
                for s in steps:
                    a[f"{name}_step_{s}"] = e.files[f"step{s}"]
                a[f"{name}_final"] = e.files[final]
        artifacts[str(seed)] = {k: str(v) for k, v in a.items()}

    if "student" in signal:  # each role's movement relative to the student's, per seed
        for sig in signal.values():
            sig["kl_ratio"] = [k / max(s, 1e-12) for k, s in
                               zip(sig["kl_from_base"], signal["student"]["kl_from_base"])]
    teacher_info = {"kind": cfg.teacher_kind, "weight_direction": cfg.teacher_kind == "finetuned",
                    "prefix": persona(cfg.trait) if cfg.teacher_kind == "prompted" else "",
                    "other_items": control_items}
    write_json(out / "artifacts.json", {"study": "owl-numbers", "model": {
        "type": "hooked_transformer", "cfg": dataclasses.asdict(cfg.model),
        "d_vocab": len(vocab), "n_ctx": cfg.world.n_ctx}, "teacher": teacher_info,
        "control_role": control, "seeds": artifacts})
    summary = {"study": "owl-numbers", "trait": cfg.trait, "mode": cfg.mode, "seeds": seeds,
               **rates, "eval_questions": {
                   "rates": list(CATEGORIES[cfg.category].split("heldout")),
                   "rates_select": list(CATEGORIES[cfg.category].split("select"))},
               "control_role": control, "control_items": control_items, "signal": signal,
               "replicate": cfg.replicate, "ci_covers": CI_COVERS[cfg.replicate],
               "base_seeds": base_seeds, "teacher": teacher_info, "filter": filters_,
               "config": dataclasses.asdict(cfg),
               "run_key": config_key("owl-numbers", [cfg, seeds])}
    write_json(out / "summary.json", summary)
    write_report(out, summary)
    return summary


# "tiny": a 1-layer d_model 32 model in a few minutes, for tests and notebooks
TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2, "d_mlp": 128, "pretrain_steps": 300,
        "pretrain_batch": 32, "n_samples": 300, "dataset_size": 200, "student_steps": 60,
        "checkpoint_every": 30, "eval_samples": 50}
register(Study("owl-numbers", OwlConfig, run,
               "a trait travels through number sequences in a tiny transformer from scratch",
               default_seeds=3, presets={
                   "tiny": TINY,
                   # the paper's protocol (fine-tuning on sampled tokens); its table:
                   # python -m interp.study run owl-numbers --preset sampled --seeds 6
                   "sampled": {"mode": "sampled"}}))
