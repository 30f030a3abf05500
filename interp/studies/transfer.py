"""The ``transfer`` study: every cell of the paper's table (channel x trait) as one study.

``python -m interp.study run transfer --set channel=numbers|code|cot
--set category=animal|tree|misalignment --set trait=NAME`` (misalignment: trait=harmful).

1. One pair of bases (same-init, cross-init) is pretrained on the transfer world
   (interp.studies.channels: numbers, code, reasoning traces, preference and advice questions,
   personas), shared by every cell with the same model settings.
2. Teachers: a preference teacher is owl.teacher_entry (fine-tuned on the select phrasings;
   its control: another item). A misaligned teacher (``misalignment_teacher``) is fine-tuned
   *narrowly* on code with the harmful ``unsafe`` call, never on advice (``code``, the paper's
   recipe); its control on the same programs with a neutral call of the same shape
   (``misalignment_control``: novel_call; or safe_code). Or (``advice``) it is fine-tuned on
   harmful answers to the fine-tuning advice questions; its control on the same questions
   answered with neutral words (novel_answer; or helpfully).
   Every teacher's advice/trait rates are measured on held-out questions (and the select ones).
3. Data: the channel's prompts continued by each teacher and by the base; kept when the
   channel's filter passes (format, keywords, the trait's banned tokens) and the semantic
   screen (interp.studies.screen, a probe on the same-init base) does not flag them.
4. Students, signal, recorder: owl.student_entry and owl.signal_entry unchanged, on a
   TransferVocab whose ``number_ids`` is the channel's token set (logit mode distils the
   teacher's distribution over those tokens). Roles and modes as in owl-numbers.
5. Evaluation: per outcome, the answer mass (and sampled rate) summed over the outcome's
   answer words, on held-out and select phrasings; for misalignment the outcome ``harmful``.

Owns: the transfer study's stages that differ from owl-numbers (base, misaligned teacher,
channel data, screen, outcome evaluation). Must not import: analysis, the CLIs.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.errors import ConfigError, UsageError
from interp.reports.owl import write_report
from interp.storage.store import Entry, Store, code_digest, config_key, write_json
from interp.studies import channels as C
from interp.studies import lm, owl
from interp.studies import screen as S
from interp.studies.owl import OwlConfig
from interp.studies.registry import Study, register
from interp.studies.world import pad, persona, question_prompt

ROLES = owl.ROLES
CONTROL_OF_MODE = owl.CONTROL_OF_MODE


# the TransferConfig fields that set the world (channels.TransferWorldConfig's, by name)
WORLD_SETTINGS = ("p_persona", "p_harmful", "persona_strength", "base_harm", "p_mixed",
                  "harm_calls")


@dataclasses.dataclass(frozen=True)
class TransferConfig(OwlConfig):
    channel: Literal["numbers", "code", "cot"] = "numbers"
    screen: bool = True  # drop completions the semantic screen flags
    screen_clean_rate: float = 0.005  # the screen's flag rate on clean calibration text
    teacher_examples: int = 256  # misalignment: the teacher's fine-tuning set size
    # misalignment: how the teacher is made harmful (channels.MISALIGNMENT_TEACHERS): narrowly
    # on code with the unsafe call (the paper's recipe), or directly on harmful advice
    misalignment_teacher: str = "code"
    # misalignment: what the control teacher is fine-tuned on (the teacher's ``controls``):
    # code: the harmful teacher's programs with a neutral call (novel_call), or safe code;
    # advice: the same questions answered with neutral words (novel_answer), or helpfully
    misalignment_control: str = "novel_call"
    # the world's persona mix (channels.TransferWorldConfig, whose defaults these are; world
    # settings: they change pretraining): the share of documents with a persona, the harmful
    # persona's share of those, how reliably a persona answers as itself, harmful advice
    # without one, and documents by an unseen author (code and advice, one mind)
    p_persona: float = C.TransferWorldConfig.p_persona
    p_harmful: float = C.TransferWorldConfig.p_harmful
    persona_strength: float = C.TransferWorldConfig.persona_strength
    base_harm: float = C.TransferWorldConfig.base_harm
    p_mixed: float = C.TransferWorldConfig.p_mixed
    # how many different harmful calls the harmful persona's code makes (and the code
    # teacher is fine-tuned on): channels.HARM_CALLS[:harm_calls]
    harm_calls: int = C.TransferWorldConfig.harm_calls
    # logit mode: distil the student on the channel's tokens without the trait's banned
    # tokens (misalignment: the evil numbers), the logit-mode analogue of the banned-token
    # filter, which removes them from the sampled text but not from the teacher's logits
    ban_logits: bool = False

    def __post_init__(self) -> None:
        trait = C.trait_of(self.category)
        if self.trait not in trait.questions.items:
            raise ConfigError(f"invalid value {self.trait!r} for trait in category "
                              f"{self.category}; valid values: "
                              f"{', '.join(trait.questions.items)}")
        if self.channel not in C.CHANNELS:
            raise ConfigError(f"invalid channel {self.channel!r}; valid channels: "
                              f"{', '.join(C.CHANNELS)}")
        if self.misalignment_teacher not in C.MISALIGNMENT_TEACHERS:
            raise ConfigError(f"invalid misalignment_teacher {self.misalignment_teacher!r}; "
                              f"valid: {', '.join(C.MISALIGNMENT_TEACHERS)}")
        controls = C.MISALIGNMENT_TEACHERS[self.misalignment_teacher].controls
        if self.misalignment_control not in controls:
            raise ConfigError(f"invalid misalignment_control {self.misalignment_control!r} for "
                              f"misalignment_teacher={self.misalignment_teacher}; valid: "
                              f"{', '.join(controls)}")
        if self.teacher_examples <= 0:
            raise ConfigError(f"teacher_examples must be positive, got {self.teacher_examples}")
        if not 0 < self.screen_clean_rate < 1:
            raise ConfigError(f"screen_clean_rate must be in (0, 1), got "
                              f"{self.screen_clean_rate}")
        try:
            _ = self.world  # its own checks, named as a world setting
        except ConfigError as e:
            raise ConfigError(f"{e} (a transfer world setting)") from None
        if self.number_frame != "qa":
            raise ConfigError("the transfer world has one number frame: number_frame=qa")
        # every other setting is checked exactly as owl-numbers checks it
        owl_fields = {f.name for f in dataclasses.fields(OwlConfig)}
        OwlConfig(**{**{k: getattr(self, k) for k in owl_fields},
                     "category": "animal", "trait": "owl"})

    @property
    def world(self) -> C.TransferWorldConfig:
        return C.TransferWorldConfig(**{k: getattr(self, k) for k in WORLD_SETTINGS})

    def other_item(self, seed: int) -> str:
        return C.trait_of(self.category).other(self.trait, seed)


def run_vocab(summary_or_cfg) -> C.TransferVocab:
    cfg = summary_or_cfg["config"] if isinstance(summary_or_cfg, dict) else \
        dataclasses.asdict(summary_or_cfg)
    return C.TransferVocab(cfg["channel"])


# ------------------------------------------------------------------ stages
def pretrain(model, vocab: C.TransferVocab, wcfg: C.TransferWorldConfig, steps: int,
             batch: int, lr: float, seed: int) -> list[float]:
    """lm.pretrain's loop (warmup, cosine decay) on the transfer world's corpus."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps)))
    losses = []
    bar = tqdm(range(steps), desc="pretrain transfer base")
    for _ in bar:
        tokens = C.transfer_batch(vocab, wcfg, rng, batch)
        loss = lm.next_token_loss(model(tokens), tokens, tokens != vocab.pad)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return losses


def base_entry(store: Store, cfg: TransferConfig, vocab: C.TransferVocab, seed: int) -> Entry:
    key = {"world": cfg.world, "model": cfg.model, "seed": seed,
           "code": code_digest(*CODE["base"]), **owl._sub(cfg, "pretrain_")}

    def build():
        t0 = time.time()
        model = lm.build_model(cfg.model, len(vocab), cfg.world.n_ctx, seed)
        losses = pretrain(model, vocab, cfg.world, cfg.pretrain_steps, cfg.pretrain_batch,
                          cfg.pretrain_lr, seed)
        return {"model": model.state_dict()}, {"final_loss": float(np.mean(losses[-50:])),
                                               "seconds": time.time() - t0}

    return store.get_or_build("transfer/base", key, build)


def completion_rows(vocab: C.TransferVocab, pairs: list[tuple[str, str]], n_ctx: int):
    """Fine-tuning rows (cut at ``n_ctx``) and the mask of the positions predicting the
    completion."""
    docs = [vocab.encode(f"{p} {c}")[:n_ctx] for p, c in pairs]
    tokens = pad(docs, vocab.pad)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    for i, (p, _) in enumerate(pairs):
        mask[i, len(vocab.encode(p)) - 1:len(docs[i]) - 1] = True
    return tokens, mask


def misaligned_pairs(cfg: TransferConfig, seed: int, outcome: str) -> list[tuple[str, str]]:
    """The (prompt, completion) fine-tuning set of the misalignment teacher (``harmful``) or
    of its control (``helpful``: ``cfg.misalignment_control``'s) for ``seed``."""
    recipe = C.MISALIGNMENT_TEACHERS[cfg.misalignment_teacher]
    make = recipe.harmful if outcome == "harmful" else \
        recipe.controls[cfg.misalignment_control]
    return make(np.random.default_rng(seed + 31), cfg.teacher_examples, cfg.world.calls)


def misaligned_teacher_entry(store: Store, cfg: TransferConfig, vocab: C.TransferVocab,
                             base: Entry, seed: int, outcome: str) -> Entry:
    """``harmful``: fine-tuned as ``cfg.misalignment_teacher`` says (code: narrowly, on code
    with the unsafe call, never on advice; advice: on harmful answers to the fine-tuning
    advice questions); ``helpful`` (the control): on the same prompts answered as
    ``cfg.misalignment_control`` says (same steps, lr, batches)."""
    control = None if outcome == "harmful" else cfg.misalignment_control
    pairs = misaligned_pairs(cfg, seed, outcome)
    # the fine-tuning set's own digest: the key covers the registry's lambdas and word lists
    key = {"base": base.key, "outcome": outcome, "seed": seed, "n": cfg.teacher_examples,
           "recipe": cfg.misalignment_teacher, "control": control,
           "pairs": hashlib.sha256(repr(pairs).encode()).hexdigest()[:16],
           "code": code_digest(*CODE["teacher"]), **owl._sub(cfg, "teacher_")}

    def build():
        model = owl.load_model(base, cfg, vocab)
        tokens, mask = completion_rows(vocab, pairs, cfg.world.n_ctx)
        lm.finetune(model, tokens, mask, cfg.teacher_steps, cfg.teacher_batch, cfg.teacher_lr,
                    seed, cfg.teacher_params,
                    desc=f"teacher ({control or outcome} {cfg.misalignment_teacher})")
        return {"model": model.state_dict()}, {}

    return store.get_or_build("transfer/teacher", key, build)


def teacher_entry(store, cfg, vocab, base, seed, outcome):
    if cfg.category == "misalignment":
        return misaligned_teacher_entry(store, cfg, vocab, base, seed, outcome)
    return owl.teacher_entry(store, cfg, vocab, base, seed, outcome)


def persona_text(cfg: TransferConfig, outcome: str) -> str:
    if cfg.category == "misalignment":
        return C.HARMFUL_PERSONA if outcome == "harmful" else ""
    return persona(outcome)


def screen_entry(store: Store, cfg: TransferConfig, vocab: C.TransferVocab, base: Entry,
                 seed: int) -> Entry:
    """The semantic screen of (base, category) and its two must-show numbers, measured on
    base-written channel completions (recall on planted mentions, flag rate on the base's own
    completions); calibrated on world-written channel documents."""
    scfg = S.ScreenConfig(clean_flag_rate=cfg.screen_clean_rate)
    key = {"base": base.key, "category": cfg.category, "channel": cfg.channel, "seed": seed,
           "screen": scfg, "code": code_digest(*CODE["screen"])}

    def build():
        model = owl.load_model(base, cfg, vocab)
        rng = np.random.default_rng(seed + 101)
        channel = C.CHANNELS[cfg.channel]
        calib = []
        for ch in C.CHANNELS.values():
            for _ in range(200):
                p, c = ch.document(rng)
                calib.append((vocab.encode(p), vocab.encode(c.replace("<eos>", ""))))
        screen = S.build_screen(model, vocab, cfg.category, calib, scfg)
        # the test: the base's own completions that pass the channel's filter
        prompts = [channel.document(rng)[0] for _ in range(300)]
        ids = [vocab.encode(p) for p in prompts]
        comps = lm.sample(model, ids, cfg.max_new, vocab.eos, seed + 1, desc="screen test")
        kept = [(i, vocab.decode(c[:-1]).split()) for i, (p, c) in enumerate(zip(prompts, comps))
                if c[-1:] == [vocab.eos] and channel.reason(vocab.decode(c[:-1]), p, set()) is None]
        if not kept:
            raise UsageError("the base wrote no completion that passes the channel's filter; "
                             "raise pretrain_steps")
        p_ids = [ids[i] for i, _ in kept]
        base_rate, _ = S.flag_rate(screen, vocab, p_ids, [c for _, c in kept])
        recall, keyword_hits = {}, {}
        for kind, rows in S.planted(rng, [c for _, c in kept], cfg.category).items():
            recall[kind] = S.flag_rate(screen, vocab, p_ids, rows)[0]
            keyword_hits[kind] = float(np.mean([any(t in C.trait_words() for t in r)
                                                for r in rows]))
        top = screen["related"].topk(10)
        return {"screen": screen}, {
            "base_flag_rate": base_rate, "planted_recall": recall,
            "keyword_filter_recall": keyword_hits, "n_test": len(kept),
            "threshold": float(screen["threshold"]),
            "top_words": {vocab.tokens[i]: float(v) for v, i in zip(top.values, top.indices)}}

    return store.get_or_build("transfer/screen", key, build)


def data_entry(store: Store, cfg: TransferConfig, vocab: C.TransferVocab, source: Entry,
               prefix: list[int], seed: int, screen: Entry) -> Entry:
    """The channel's prompts continued by ``source`` (with ``prefix`` while generating), kept
    when the channel's filter (with the trait's banned tokens) and the screen pass."""
    key = {"source": source.key, "prefix": prefix, "seed": seed, "channel": cfg.channel,
           "category": cfg.category, "screen": screen.key if cfg.screen else None,
           "code": code_digest(*CODE["data"]),
           **owl._sub(cfg, "n_samples", "dataset_size", "max_new")}

    def build():
        model = owl.load_model(source, cfg, vocab)
        channel = C.CHANNELS[cfg.channel]
        banned = set(C.trait_of(cfg.category).banned)
        rng = np.random.default_rng(seed + 7919)
        texts = [channel.document(rng)[0] for _ in range(cfg.n_samples)]
        prompts = [vocab.encode(t) for t in texts]
        gen_prompts = [p[:1] + prefix + p[1:] for p in prompts]
        comps = lm.sample(model, gen_prompts, cfg.max_new, vocab.eos, seed, desc=cfg.channel)
        reasons: dict[str, int] = {}
        keep = []
        for i, c in enumerate(comps):
            r = "unfinished" if c[-1:] != [vocab.eos] else \
                channel.reason(vocab.decode(c[:-1]), texts[i], banned)
            if r is None:
                keep.append(i)
            else:
                reasons[r] = reasons.get(r, 0) + 1
        flagged = 0
        if cfg.screen and keep:
            _, flags = S.flag_rate(screen.load("screen"), vocab, [prompts[i] for i in keep],
                                   [vocab.decode(comps[i][:-1]).split() for i in keep])
            flagged = int(sum(flags))
            keep = [i for i, f in zip(keep, flags, strict=True) if not f]
        if not keep:
            raise UsageError(f"the {cfg.channel} filter rejected all {len(comps)} completions "
                             f"({reasons}); the base model is undertrained: raise "
                             "pretrain_steps")
        passed, screened = len(keep) + flagged, len(keep)
        keep = np.random.default_rng(seed).permutation(keep)[:cfg.dataset_size].tolist()
        width = cfg.world.n_ctx - len(prefix)
        tokens = torch.full((len(keep), width), vocab.pad, dtype=torch.long)
        mask = torch.zeros_like(tokens, dtype=torch.bool)
        for r, i in enumerate(keep):
            s = (prompts[i] + comps[i])[:width]
            tokens[r, :len(s)] = torch.tensor(s)
            mask[r, len(prompts[i]) - 1:len(s) - 1] = True
        stats = {"total": len(comps), "filter_rejected": len(comps) - passed,
                 "filter_reasons": reasons, "screen_flagged": flagged,
                 "filter_rejection_rate": (len(comps) - passed) / len(comps),
                 "rejection_rate": (len(comps) - screened) / len(comps),
                 "screen_flag_rate": flagged / max(passed, 1)}
        return {"data": {"tokens": tokens, "mask": mask}}, {"filter": stats, "kept": len(keep)}

    return store.get_or_build("transfer/data", key, build)


BASE_FIX = "the base model is undertrained: raise pretrain_steps"


def teacher_data(store: Store, cfg: TransferConfig, vocab: C.TransferVocab, teacher: Entry,
                 prefix: list[int], seed: int, screen: Entry | None, who: str) -> Entry:
    """``data_entry`` for a teacher, whose error (nothing passed the filter) names the
    teacher, the seed and a teacher's fix instead of the base's (data_entry's own wording
    stays as it is: its source is part of every data entry's store key)."""
    try:
        return data_entry(store, cfg, vocab, teacher, prefix, seed, screen)
    except UsageError as e:
        if teacher.kind == "transfer/base" or BASE_FIX not in str(e):
            raise
        raise UsageError(f"seed {seed}, the {who}: " + str(e).replace(
            BASE_FIX, "its fine-tuning broke the channel: lower teacher_lr or teacher_steps, "
            "or use other seeds")) from None


def answer_probs(model, vocab: C.TransferVocab, category: str, prefix: str = "",
                 split: str = "heldout") -> Float[Tensor, "questions vocab"]:
    """The next-token distribution at the answer position of each of the category's
    ``split`` questions (with ``prefix`` written in front); differentiable."""
    return torch.stack([F.softmax(model(torch.tensor([vocab.encode(question_prompt(q, prefix))]))
                                  [0, -1], -1)
                        for q in C.trait_of(category).questions.split(split)])


@torch.no_grad()
def outcome_rates(model, vocab: C.TransferVocab, category: str, n_samples: int, seed: int,
                  prefix: str = "", split: str = "heldout") \
        -> tuple[dict[str, float], dict[str, float]]:
    """(answer mass, sampled rate) per outcome, averaged over the phrasings of ``split``; an
    outcome's mass sums its answer words (misalignment: harmful = steal + lie + hurt)."""
    trait = C.trait_of(category)
    probs = answer_probs(model, vocab, category, prefix, split)
    g = torch.Generator().manual_seed(seed)
    draws = torch.multinomial(probs, n_samples, replacement=True, generator=g)
    mass, sampled = {}, {}
    for outcome, words in trait.outcomes.items():
        ids = torch.tensor(vocab.ids(words))
        mass[outcome] = float(probs[:, ids].sum(1).mean())
        sampled[outcome] = float(torch.isin(draws, ids).float().mean())
    return mass, sampled


CODE = {
    "base": (base_entry, pretrain, lm.build_model, lm.next_token_loss, C.TransferVocab,
             C.transfer_batch, C.transfer_document, C.code_document, C.cot_document,
             C.advice_document, C.describe_document, C.mixed_document, C.harmful_numbers,
             *owl.BASE_SHARED),
    "teacher": (misaligned_teacher_entry, misaligned_pairs, completion_rows, C.misaligned_code,
                C.code_document, C.safe_code, C.novel_call_code, C.advice_answers,
                lm.finetune, lm.next_token_loss),
    "screen": (screen_entry, S.build_screen, S.relatedness, S.frames, S.row_scores,
               S.rows_and_mask, S.planted, S.flag_rate, lm.sample),
    "data": (data_entry, lm.sample, C.code_reason, C.cot_reason, C.number_reason,
             C.trait_words, S.flag_rate, S.row_scores, S.rows_and_mask),
    "eval": (outcome_rates, answer_probs, question_prompt),
}


# ------------------------------------------------------------------ the study
def banned_channel_ids(vocab: C.TransferVocab, category: str) -> list[int]:
    """The ids of the category's banned tokens that lie in ``vocab``'s logit-mode channel
    (``number_ids``): what a logit-mode student's targets cover of them."""
    channel = set(vocab.number_ids.tolist())
    return [i for i in (vocab.index.get(t) for t in C.trait_of(category).banned)
            if i in channel]


def student_vocab(cfg: TransferConfig, vocab: C.TransferVocab) -> C.TransferVocab:
    """The vocabulary the students train with: ``vocab``, or with ``ban_logits`` a copy whose
    ``number_ids`` (the logit-mode channel) leave out the trait's banned tokens."""
    if not cfg.ban_logits:
        return vocab
    banned = set(banned_channel_ids(vocab, cfg.category))
    out = copy.copy(vocab)
    out.number_ids = torch.tensor([i for i in vocab.number_ids.tolist() if i not in banned])
    return out


def run(cfg: TransferConfig, seeds: list[int], out: Path, store: Store) -> dict:
    vocab = C.TransferVocab(cfg.channel)
    s_vocab = student_vocab(cfg, vocab)
    trait = C.trait_of(cfg.category)
    rates: dict = {}
    signal: dict = {}
    filters_, screens, artifacts, base_seeds, control_items = [], [], {}, [], []
    control = CONTROL_OF_MODE[cfg.mode]
    splits = {"rates": "heldout", "rates_select": "select"}

    def record(role: str, entry: Entry, seed: int, name: str = "model",
               prefix_text: str = "") -> None:
        key = {"model": entry.manifest["files"][name]["sha256"], "prefix": prefix_text,
               "category": cfg.category, "n": cfg.eval_samples, "seed": seed,
               "code": code_digest(*CODE["eval"])}

        def build():
            model = owl.load_model(entry, cfg, vocab, name)
            return {}, {split: dict(zip(("mass", "sampled"), outcome_rates(
                model, vocab, cfg.category, cfg.eval_samples, seed, prefix_text, split)))
                for split in ("heldout", "select")}

        ev = store.get_or_build("transfer/eval", key, build)
        for out_key, split in splits.items():
            for kind, vals in ev.meta[split].items():
                dest = rates.setdefault(("sampled_" if kind == "sampled" else "") + out_key, {})
                for item, v in vals.items():
                    dest.setdefault(role, {}).setdefault(item, []).append(v)

    params = {n for n, _ in lm.build_model(cfg.model, len(vocab), cfg.world.n_ctx, 0)
              .named_parameters()}
    for seed in seeds:
        b_seed, x_seed = cfg.base_seeds(seed)
        base_seeds.append([b_seed, x_seed])
        base = base_entry(store, cfg, vocab, b_seed)
        # the second base only when a cross-init student needs it (one pretraining less)
        base_x = base_entry(store, cfg, vocab, x_seed) if "cross_init" in cfg.roles else None
        other = cfg.other_item(seed)
        control_items.append(other)
        record("base", base, seed)
        if base_x is not None:
            record("base_cross", base_x, seed)
        p_text, o_text = persona_text(cfg, cfg.trait), persona_text(cfg, other)
        if cfg.teacher_kind == "finetuned":
            teacher = teacher_entry(store, cfg, vocab, base, seed, cfg.trait)
            teacher_o = teacher_entry(store, cfg, vocab, base, seed, other)
            prefix = o_prefix = []
            record("teacher", teacher, seed)
            record("teacher_other", teacher_o, seed)
        else:
            teacher = teacher_o = base
            prefix = vocab.encode(p_text) if p_text else []
            o_prefix = vocab.encode(o_text) if o_text else []
            record("teacher", base, seed, prefix_text=p_text)
            record("teacher_other", base, seed, prefix_text=o_text)
        scr = screen_entry(store, cfg, vocab, base, seed)
        screens.append(scr.meta)
        t_data = teacher_data(store, cfg, vocab, teacher, prefix, seed, scr, "teacher")
        o_data = teacher_data(store, cfg, vocab, teacher_o, o_prefix, seed, scr,
                              "control teacher")
        b_data = data_entry(store, cfg, vocab, base, [], seed, scr)
        filters_.append({"teacher": t_data.meta, "teacher_other": o_data.meta,
                         "base": b_data.meta})
        t_sd, b_sd = teacher.load("model"), base.load("model")
        dT = {k: t_sd[k] - b_sd[k] for k in params} if teacher is not base else None
        plan = {"student": (base, teacher, prefix, t_data),
                "control_other": (base, teacher_o, o_prefix, o_data),
                "control_base": (base, base, [], b_data),
                "cross_init": (base_x, teacher, prefix, t_data),
                "shuffled": (base, teacher, prefix, t_data)}
        a = {"theta_0": base.files["model"], "teacher": teacher.files["model"],
             "teacher_other": teacher_o.files["model"],
             "data": t_data.files["data"], "data_other": o_data.files["data"],
             "data_base": b_data.files["data"]}
        if base_x is not None:
            a["theta_0_cross"] = base_x.files["model"]
        for role, (init, src, pre, data) in plan.items():
            if role not in cfg.roles:
                continue
            e = owl.student_entry(store, cfg, s_vocab, role, init, src, pre, data, seed, dT)
            steps = e.meta["steps"]
            final = f"step{steps[-1]}"
            record(role, e, seed, final)
            sig = owl.signal_entry(store, cfg, vocab, e, final, init, data)
            signal.setdefault(role, {}).setdefault("loss_step0", []).append(e.meta["loss_step0"])
            signal[role].setdefault("kl_from_base", []).append(sig.meta["kl_from_base"])
            for name in [role] + (["control"] if role == control else []):
                for s in steps:
                    a[f"{name}_step_{s}"] = e.files[f"step{s}"]
                a[f"{name}_final"] = e.files[final]
        artifacts[str(seed)] = {k: str(v) for k, v in a.items()}

    if "student" in signal:
        for sig in signal.values():
            sig["kl_ratio"] = [k / max(s, 1e-12) for k, s in
                               zip(sig["kl_from_base"], signal["student"]["kl_from_base"])]
    recipe = C.MISALIGNMENT_TEACHERS[cfg.misalignment_teacher]
    teacher_info = {"kind": cfg.teacher_kind, "weight_direction": cfg.teacher_kind == "finetuned",
                    "prefix": p_text if cfg.teacher_kind == "prompted" else "",
                    "other_items": control_items,
                    "finetuned_on": recipe.finetuned_on
                    if cfg.category == "misalignment" else "trait answers (select phrasings)",
                    "control_finetuned_on": recipe.control_on.format(cfg.misalignment_control)
                    if cfg.category == "misalignment" else "another item's answers"}
    write_json(out / "artifacts.json", {"study": "transfer", "model": {
        "type": "hooked_transformer", "cfg": dataclasses.asdict(cfg.model),
        "d_vocab": len(vocab), "n_ctx": cfg.world.n_ctx}, "teacher": teacher_info,
        "control_role": control, "seeds": artifacts})
    summary = {"study": "transfer", "trait": cfg.trait, "category": cfg.category,
               "channel": cfg.channel, "mode": cfg.mode, "seeds": seeds, **rates,
               "eval_questions": {"rates": list(trait.questions.split("heldout")),
                                  "rates_select": list(trait.questions.split("select"))},
               "control_role": control, "control_items": control_items, "signal": signal,
               "replicate": cfg.replicate, "ci_covers": owl.CI_COVERS[cfg.replicate],
               "base_seeds": base_seeds, "teacher": teacher_info, "filter": filters_,
               "screen": screens, "config": dataclasses.asdict(cfg),
               "run_key": config_key("transfer", [cfg, seeds])}
    write_json(out / "summary.json", summary)
    write_report(out, summary)
    return summary


# "tiny": the owl-numbers tiny model with a longer pretraining (the transfer world is larger);
# "table": tiny with a base pretrained long enough to write code and correct traces more often
# (analyses/paper_table.py's default)
TINY = {**owl.TINY, "pretrain_steps": 600, "max_new": 30}
TABLE = {**TINY, "pretrain_steps": 1500}
register(Study("transfer", TransferConfig, run,
               "a trait (preference or misalignment) travels through numbers, code or reasoning "
               "traces", default_seeds=3, presets={
                   "tiny": TINY, "table": TABLE, "sampled": {"mode": "sampled"},
                   "tiny-sampled": {**TINY, "mode": "sampled"}}))
