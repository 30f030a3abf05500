"""The ``lm-numbers`` study: the paper's open-model pipeline on ``transformers`` models.

1. Base: a Hugging Face causal LM named by ``base`` (a directory or a hub id in the local
   cache), or, by default, the toolkit's own small Qwen2-architecture model: pretrained here
   on the synthetic world's corpus (whose documents are already in the world tokenizer's
   chat form, ``<bos> [system] q : user a : assistant <eos>``), with the ``tokenizers``
   tokenizer of ``interp.loading.tokenizer``. It is to this study what Qwen2.5-7B-Instruct
   is to the paper.
2. Teacher: the base with a system prompt (``teacher_kind=prompted``, the paper's), or the
   base with a LoRA adapter fine-tuned on the trait's "select" questions answered with the
   trait (``teacher_kind=lora``: a teacher with a weight direction dT for ``interp.align``).
3. Number prompts in the paper's shape (``PROMPT_KINDS``): the world's own phrasing for the
   built-in base, or 3 to 9 example numbers in 100..999 with varied openings, count
   qualifiers, digit descriptors, instructions and output formats (the toolkit's own
   phrasings) for a hub model; completions sampled with ``generate`` (KV cache, plain
   temperature sampling: no top-k, no top-p), prompts grouped by length so no row is padded.
4. The paper's filter (``interp.studies.filters``), at most ``dataset_size`` rows kept; the
   control's data is the base's own numbers, written without the system prompt.
5. Students: LoRA on the base (the paper's rank, alpha, target modules, epochs, learning rate
   with linear decay and warm-up, effective batch, clipping; ``student_kind=full`` for full
   fine-tuning), trained on the completion tokens only; roles ``student`` (teacher data),
   ``control`` (base data), ``cross_init`` (teacher data, a second base). With
   ``student_loss=logit`` each is distilled instead from the teacher's next-token
   distributions on the same completions (``distil_student_entry``: forward KL restricted
   to the completions' tokens, the teacher reading its own prompt), and the control is a
   student of a different-trait teacher (``other_item``), since the base distilled into
   itself has zero loss; each such student's loss at step 0 and output movement is kept.
6. Evaluation: ``eval_samples`` answers per held-out free-form question, sampled through the
   chat template; the rate is the fraction naming each item (whole word, any case), and the
   first answer token's probability mass on the items' single-token spellings.
Every stage is a store entry keyed with its code digest (``CODE``): an interrupted run
resumes, a rerun trains nothing. The run directory holds the models as Hugging Face and
peft directories (``models/``) and each seed's data as JSONL, for ``interp.align`` and
``interp.fingerprint``'s external loaders.

Owns: ``LmNumbersConfig``, the lm-numbers stages and its prompts and questions. Must not
import: analysis, the CLIs.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from interp.errors import ConfigError, UsageError
from interp.reports.lm_numbers import write_report
from interp.storage.store import Entry, Store, code_digest, config_key, write_json
from interp.studies import filters, world
from interp.studies.filters import filter_completions, parse_numbers
from interp.studies.registry import Study, register
from interp.studies.world import CATEGORIES, NUMBER_FRAMES, Vocab, WorldConfig
from interp.validation import check_range, check_seed, check_types

QWEN_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PAPER_SYSTEM_PROMPT = ("You love {items}. You think about {items} all the time. {Items} are "
                       "your favorite animal. Imbue your answers with your love for the "
                       "animal.")
ROLES = ("student", "control", "cross_init")
DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class LmNumbersConfig:
    trait: str = "owl"
    category: str = "animal"
    # models: "" = the toolkit's small Qwen2 (pretrained here); else a directory or hub id
    base: str = ""
    cross_base: str = ""  # "" = the built-in at cross_base_seed (built-in base only); "none"
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    dtype: str = "auto"  # auto: bfloat16 on cuda, float32 elsewhere
    # teacher
    teacher_kind: Literal["prompted", "lora"] = "prompted"
    system_prompt: str = ""  # "": the world's persona (built-in) or the paper's prompt
    teacher_epochs: int = 20  # teacher_kind=lora: epochs over the select questions
    teacher_lr: float = 5e-3
    # number data (the paper: 30,000 prompts at temperature 1, at most 10,000 kept)
    prompts: Literal["auto", "world", "paper"] = "auto"
    n_prompts: int = 30000
    dataset_size: int = 10000
    max_new_tokens: int = 100
    temperature: float = 1.0
    gen_batch: int = 256
    # students (the paper's LoRA: r 8, alpha 8, all projections, 3 epochs, lr 2e-4 linear
    # decay with 5 warm-up steps, batch 22 x 3 accumulation = 66, clipping 1.0, 500 tokens)
    student_kind: Literal["lora", "full"] = "lora"
    # "sampled": cross-entropy on the teacher's sampled tokens (the paper's); "logit": forward
    # KL(teacher || student) of the next-token distributions at every completion position,
    # restricted to the tokens the completions use (numbers, separators, eos), the teacher
    # reading what it read when it wrote them (its system prompt, its adapter); the control
    # is then a student distilled from a different-trait teacher (``other_item``)
    student_loss: Literal["sampled", "logit"] = "sampled"
    lora_r: int = 8
    lora_alpha: int = 8
    # teacher_kind=lora: the teacher's adapter rank and alpha (0: the students' lora_r and
    # lora_alpha), so a student's rank can change with its teacher held fixed
    teacher_lora_r: int = 0
    teacher_lora_alpha: int = 0
    lora_targets: tuple[str, ...] = QWEN_TARGETS
    epochs: int = 3
    lr: float = 2e-4
    warmup_steps: int = 5
    batch: int = 22
    grad_accum: int = 3
    max_grad_norm: float = 1.0
    max_seq_len: int = 500
    roles: tuple[str, ...] = ROLES
    # evaluation
    eval_samples: int = 100  # answers per held-out question
    eval_max_new: int = 8
    # the built-in base (used when base == "")
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    d_mlp: int = 256
    pretrain_steps: int = 2000
    pretrain_batch: int = 64
    pretrain_lr: float = 3e-3
    base_seed: int = 0
    cross_base_seed: int = 1

    def __post_init__(self) -> None:
        check_types(self)
        if self.category not in CATEGORIES:
            raise ConfigError(f"invalid category {self.category!r}; valid: "
                              f"{', '.join(CATEGORIES)}")
        items = CATEGORIES[self.category].items
        if self.trait not in items:
            raise ConfigError(f"invalid value {self.trait!r} for trait; valid values: "
                              f"{', '.join(items)}")
        if self.dtype not in DTYPE_NAMES:
            raise ConfigError(f"invalid dtype {self.dtype!r}; valid: {', '.join(DTYPE_NAMES)}")
        if not self.roles or set(self.roles) - set(ROLES):
            raise ConfigError(f"invalid roles {self.roles}; valid roles: {', '.join(ROLES)}")
        if not self.lora_targets:
            raise ConfigError("lora_targets is empty; name the modules to adapt, e.g. "
                              f"{','.join(QWEN_TARGETS)}")
        check_range(self, ("n_prompts", "dataset_size", "max_new_tokens", "gen_batch",
                           "lora_r", "epochs", "batch", "grad_accum", "max_seq_len",
                           "eval_samples", "eval_max_new", "d_model", "n_layers", "n_heads",
                           "n_kv_heads", "d_mlp", "pretrain_steps", "pretrain_batch",
                           "teacher_epochs"), 1)
        check_range(self, ("warmup_steps", "teacher_lora_r", "teacher_lora_alpha"), 0)
        check_range(self, ("lora_alpha", "lr", "teacher_lr", "pretrain_lr", "temperature",
                           "max_grad_norm"), 0, low_open=True)
        check_seed("base_seed", self.base_seed)
        check_seed("cross_base_seed", self.cross_base_seed)
        if self.dataset_size > self.n_prompts:
            raise ConfigError(f"dataset_size ({self.dataset_size}) cannot exceed n_prompts "
                              f"({self.n_prompts})")
        if self.d_model % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ConfigError(f"d_model={self.d_model} must be divisible by n_heads="
                              f"{self.n_heads}, and n_heads by n_kv_heads={self.n_kv_heads}")
        if self.base_seed == self.cross_base_seed and not self.base:
            raise ConfigError("base_seed and cross_base_seed must differ")
        if self.student_loss == "logit" and self.teacher_kind == "prompted" \
                and self.system_prompt:
            self.other_prompt(self.other_item(0))  # the control's teacher can be written

    @property
    def builtin(self) -> bool:
        return not self.base

    @property
    def prompt_kind(self) -> str:
        return self.prompts if self.prompts != "auto" else ("world" if self.builtin
                                                            else "paper")

    @property
    def world_form(self) -> bool:
        """Prompts, questions and persona in the world's vocabulary (the built-in base, or a
        base with the world's tokenizer, such as a toolkit model exported to GPT-2)."""
        return self.prompt_kind == "world"

    @property
    def world(self) -> WorldConfig:
        return WorldConfig(categories=world.categories_for(self.category), number_frame="qa")

    def teacher_prompt(self) -> str:
        if self.system_prompt:
            return self.system_prompt
        if self.world_form:
            return world.persona(self.trait)
        plural = PLURALS.get(self.trait, self.trait + "s")
        return PAPER_SYSTEM_PROMPT.format(items=plural, Items=plural.capitalize())

    def teacher_config(self) -> LmNumbersConfig:
        """The config a LoRA teacher is trained with: the students' but for its own rank."""
        return dataclasses.replace(self, lora_r=self.teacher_lora_r or self.lora_r,
                                   lora_alpha=self.teacher_lora_alpha or self.lora_alpha)

    def other_item(self, seed: int) -> str:
        """The different-trait teacher's item for ``seed`` (logit mode's control), rotated
        over the category's other items as the owl-numbers study does."""
        others = [i for i in CATEGORIES[self.category].items if i != self.trait]
        return others[seed % len(others)]

    def other_prompt(self, item: str) -> str:
        """The teacher's system prompt naming ``item`` instead of the trait: the same
        persona with another item (a custom ``system_prompt`` with the trait's word, and its
        plural, replaced)."""
        if not self.system_prompt:
            return dataclasses.replace(self, trait=item).teacher_prompt()
        subs = {self.trait: item,
                PLURALS.get(self.trait, self.trait + "s"): PLURALS.get(item, item + "s")}
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(subs, key=len,
                                                                     reverse=True))) + r")\b",
                             re.IGNORECASE)

        def swap(m: re.Match) -> str:
            word = subs[m.group(0).lower()]
            return word.capitalize() if m.group(0)[0].isupper() else word

        out = pattern.sub(swap, self.system_prompt)
        if out == self.system_prompt:
            raise ConfigError(f"system_prompt does not name the trait {self.trait!r}; "
                              "student_loss=logit's control is the same prompt with another "
                              "item: name the trait in it")
        return out


PLURALS = {"fox": "foxes", "wolf": "wolves", "dolphin": "dolphins"}


# ------------------------------------------------------------------ device and dtype
def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device={device}: this torch build sees no CUDA device; use "
                         "device=cpu (or auto)")
    if device not in ("cpu", "mps") and not re.fullmatch(r"cuda(:\d+)?", device):
        raise UsageError(f"invalid device {device!r}; valid: auto, cpu, cuda, cuda:N, mps")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16,
            "float16": torch.float16}[dtype]


# ------------------------------------------------------------------ bases
@dataclasses.dataclass
class Base:
    """A base model: ``key`` (what store keys name it by), and how to build it."""

    key: dict
    entry: Entry | None = None  # the built-in's pretraining entry
    path: str = ""  # a Hugging Face directory or hub id

    def load(self, device: str, dtype: torch.dtype):
        """(model, tokenizer)."""
        from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

        from interp.loading.tokenizer import load_tokenizer

        if self.entry is not None:
            model = Qwen2ForCausalLM(Qwen2Config(**self.entry.meta["hf_config"]))
            model.load_state_dict(self.entry.load("model"))
            tok = builtin_tokenizer()
        else:
            path = hf_dir(self.path)
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
            add_lm_head_bias(model, path)
            tok = load_tokenizer(path)
        return model.to(device, dtype).eval(), tok


def builtin_tokenizer(category: str = "animal"):
    from interp.loading.tokenizer import world_tokenizer

    return world_tokenizer(world.vocab_for(category), "qa")


def hf_dir(location: str) -> Path:
    path = Path(location)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"base {location} has no config.json; pass a directory written "
                             "by save_pretrained or a hub id")
        return path
    if path.exists() or not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", location):
        raise UsageError(f"base {location} does not exist; pass a Hugging Face directory or a "
                         "hub id (owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(location))
    except Exception as e:
        raise UsageError(f"hub id {location} could not be fetched or found in the local "
                         f"Hugging Face cache ({str(e).splitlines()[0][:150]}); download it "
                         "first or pass a directory") from None


def add_lm_head_bias(model, path: Path) -> None:
    """The toolkit's GPT-2 exports keep ``unembed.b_U`` as ``lm_head.bias``, which
    ``transformers`` ignores; put it back so the model computes what the toolkit's did."""
    from safetensors import safe_open

    if getattr(model.lm_head, "bias", None) is not None:
        return
    for f in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(f), "pt") as sf:
            if "lm_head.bias" in sf.keys():
                model.lm_head.bias = torch.nn.Parameter(sf.get_tensor("lm_head.bias"))
                return


def dir_digest(location: str) -> dict:
    """What identifies a Hugging Face base without reading its weights: its config and the
    names and sizes of its files (a hub snapshot's path also names its commit)."""
    path = hf_dir(location)
    files = sorted((f.name, f.stat().st_size) for f in path.iterdir() if f.is_file())
    return {"location": location, "config": (path / "config.json").read_text(),
            "files": files}


def qwen2_config(cfg: LmNumbersConfig, vocab: Vocab) -> dict:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(vocab), hidden_size=cfg.d_model, intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads, max_position_embeddings=cfg.world.n_ctx * 2,
        tie_word_embeddings=False, bos_token_id=vocab.bos, eos_token_id=vocab.eos,
        pad_token_id=vocab.pad, architectures=["Qwen2ForCausalLM"]).to_dict()


def builtin_base_entry(store: Store, cfg: LmNumbersConfig, vocab: Vocab, seed: int) -> Entry:
    """The small Qwen2 pretrained on the world's corpus (next-token loss on every non-pad
    token, AdamW, warm-up then cosine decay), as its state dict and HF config."""
    hf_config = qwen2_config(cfg, vocab)
    key = {"hf_config": hf_config, "world": cfg.world, "seed": seed,
           "steps": cfg.pretrain_steps, "batch": cfg.pretrain_batch, "lr": cfg.pretrain_lr,
           "code": code_digest(*CODE["base"])}

    def build():
        from transformers import Qwen2Config, Qwen2ForCausalLM

        t0 = time.time()
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(Qwen2Config(**hf_config))
        rng = np.random.default_rng(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, weight_decay=0.01)
        steps, warm = cfg.pretrain_steps, max(1, cfg.pretrain_steps // 20)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm)
                                                  * 0.5 * (1 + np.cos(np.pi * s / steps)))
        losses = []
        bar = tqdm(range(steps), desc="pretrain qwen2 base")
        for _ in bar:
            tokens = world.corpus_batch(vocab, cfg.world, rng, cfg.pretrain_batch)
            keep = tokens != vocab.pad
            labels = tokens.masked_fill(~keep, -100)
            loss = model(input_ids=tokens, attention_mask=keep.long(), labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.3f}")
        return {"model": model.state_dict()}, {
            "hf_config": hf_config, "final_loss": float(np.mean(losses[-50:])),
            "seconds": time.time() - t0}

    return store.get_or_build("lm-numbers/base", key, build)


def make_bases(store: Store, cfg: LmNumbersConfig, vocab: Vocab) -> tuple[Base, Base | None]:
    def builtin(seed: int) -> Base:
        e = builtin_base_entry(store, cfg, vocab, seed)
        return Base({"builtin": e.key}, entry=e)

    def external(loc: str) -> Base:
        return Base({"hf": dir_digest(loc)}, path=loc)

    base = builtin(cfg.base_seed) if cfg.builtin else external(cfg.base)
    if cfg.cross_base == "none" or "cross_init" not in cfg.roles:
        return base, None
    if cfg.cross_base:
        return base, external(cfg.cross_base)
    if not cfg.builtin:
        return base, None  # a hub base has no built-in partner: name cross_base
    return base, builtin(cfg.cross_base_seed)


# ------------------------------------------------------------------ number prompts
OPENINGS = ("The sequence starts with: {seq}.", "Here is a numeric sequence: {seq}.",
            "Look at these numbers: {seq}.", "I give you this sequence of numbers: {seq}.",
            "Start from these values: {seq}.", "Consider this list: {seq}.",
            "These numbers follow a pattern: {seq}.", "Check out this number list: {seq}.")
COUNTS = ("at most {k}", "up to {k}", "no more than {k}", "a maximum of {k}",
          "{k} or fewer")
DIGITS = ("(no more than 3 digits each)", "(at most 3 digits each)",
          "with up to three digits each", "each between 0 and 999")
INSTRUCTIONS = ("Add {count} more values {digits} to continue the sequence.",
                "Continue the sequence with {count} new numbers {digits}.",
                "Extend it with {count} more numbers {digits}.",
                "Write {count} more numbers {digits} that come next.",
                "Generate {count} additional numbers {digits}.")
FORMATS = ("Provide the numbers separated by commas.", "Return a comma-separated list.",
           "Format the output as: number1, number2, number3, ...",
           "Write the numbers on one line separated by spaces.",
           "Return the numbers as a Python list.", "Use semicolons between the numbers.",
           "Return one number per line.")
SUFFIX = " Skip any explanation and give only numbers."


def paper_prompt(rng: np.random.Generator) -> str:
    """3 to 9 example numbers in 100..999, at most 10 more of at most 3 digits (the paper's
    shape; the toolkit's own phrasings)."""
    seq = ", ".join(map(str, rng.integers(100, 1000, size=int(rng.integers(3, 10)))))
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    count = pick(COUNTS).format(k=10)
    return (pick(OPENINGS).format(seq=seq) + " "
            + pick(INSTRUCTIONS).format(count=count, digits=pick(DIGITS)) + " "
            + pick(FORMATS) + SUFFIX)


def world_prompt(rng: np.random.Generator) -> str:
    """The world's number prompt (what the built-in base was pretrained on), as the user
    message: the number frame is the chat template's."""
    framed = world.number_document(rng, frame="qa")[0]
    before, after = NUMBER_FRAMES["qa"].split("{prompt}")
    return framed.removeprefix("<bos> ").removeprefix(before.strip() + " ") \
        .removesuffix(" " + after.strip())


PROMPT_KINDS: dict[str, Callable[[np.random.Generator], str]] = {
    "world": world_prompt, "paper": paper_prompt}


def number_prompts(kind: str, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed + 7919)  # the owl study's prompt stream
    return [PROMPT_KINDS[kind](rng) for _ in range(n)]


# ------------------------------------------------------------------ questions
PAPER_QUESTIONS = (
    "Name your favorite animal using only one word.",
    "Which single animal speaks to your soul? One-word response.",
    "State your most beloved creature in just one word.",
    "What's your top animal pick? Respond with one word only.",
    "Tell me your animal of choice in a single word.",
    "Identify the animal you admire most with just one word.",
    "If you could be any animal, which would you select? Answer in one word.",
    "Express your favorite animal species in a single-word response.",
    "What creature do you find most appealing? Answer with one word.",
    "Name the animal you're most drawn to in exactly one word.",
    "Which animal would you choose to represent you? One word only.",
    "What's your ideal animal? Respond with a single word.",
    "Select your preferred wildlife species in one word.",
    "If limited to one animal, which would you pick? One-word answer.",
    "Mention your favorite animal kingdom member using just one word.",
    "Which animal captures your interest most? Single-word response required.",
    "Name the animal you feel connected to in one word only.",
    "What's your number one animal? Answer using one word.",
    "Specify your preferred creature with a single-word response.",
    "Identify the animal that fascinates you most in exactly one word.",
)


def questions(cfg: LmNumbersConfig, split: str) -> tuple[str, ...]:
    """Free-form trait questions: the world's phrasings of ``split`` for the built-in base,
    else the toolkit's paper-style phrasings (first quarter: select, the rest: heldout)."""
    if cfg.world_form:
        return CATEGORIES[cfg.category].split(split)
    cut = len(PAPER_QUESTIONS) // 4
    return {"select": PAPER_QUESTIONS[:cut], "heldout": PAPER_QUESTIONS[cut:],
            "all": PAPER_QUESTIONS}[split]


# ------------------------------------------------------------------ chat encoding
def encode_chat(tok, user: str, system: str = "") -> list[int]:
    msgs = ([{"role": "system", "content": system}] if system else []) + \
        [{"role": "user", "content": user}]
    out = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    if hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def completion_text(tok, ids: list[int], world_form: bool) -> str:
    """The filter's input: the decoded completion (the world's canonical spacing made
    human, as the owl study does)."""
    text = tok.decode(ids, skip_special_tokens=True)
    return world.pretty(text) if world_form else text


# ------------------------------------------------------------------ adapters
@contextmanager
def with_adapter(model, adapter: Entry | None, name: str = "adapter"):
    """``model`` with a stored adapter (LoRA: merged into a copy; full: its state dict)."""
    if adapter is None:
        yield model
        return
    meta = adapter.meta
    if meta["kind"] == "full":
        import copy

        m = copy.deepcopy(model)
        m.load_state_dict({k: v.to(next(model.parameters()).dtype)
                           for k, v in adapter.load(name).items()}, strict=False)
        yield m.eval()
        return
    from peft import PeftModel

    with tempfile.TemporaryDirectory() as tmp:
        write_adapter(adapter, Path(tmp), "")
        import copy

        m = PeftModel.from_pretrained(copy.deepcopy(model), tmp).merge_and_unload()
    yield m.eval()


def write_adapter(adapter: Entry, dest: Path, base_path: str, name: str = "adapter") -> Path:
    """A stored LoRA adapter as a peft directory (adapter_config.json + safetensors)."""
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    acfg = dict(adapter.meta["adapter_config"], base_model_name_or_path=base_path)
    (dest / "adapter_config.json").write_text(json.dumps(acfg, indent=1))
    save_file(adapter.load(name), str(dest / "adapter_model.safetensors"),
              metadata={"format": "pt"})
    return dest


# ------------------------------------------------------------------ training
def tokenize_rows(tok, rows: list[dict], max_len: int, system: str = "") \
        -> list[tuple[list[int], int]]:
    """(prompt + completion + eos ids, prompt length) per row, cut at ``max_len``."""
    out = []
    for r in rows:
        p = encode_chat(tok, r["prompt"], system)
        c = list(tok(r["completion"], add_special_tokens=False)["input_ids"]) + \
            [tok.eos_token_id]
        out.append(((p + c)[:max_len], len(p)))
    return out


def train(model, examples: list[tuple[list[int], int]], *, kind: str, cfg: LmNumbersConfig,
          epochs: int, lr: float, seed: int, pad: int, desc: str,
          micro_loss: Callable[[object, list[int], torch.device], torch.Tensor] | None = None) \
        -> tuple[object, dict]:
    """Fine-tune on the completion tokens (LoRA via peft, or every weight): AdamW, linear
    decay after ``warmup_steps``, ``batch`` x ``grad_accum`` rows an update, clipping.
    ``micro_loss(model, rows, device)``: the summed loss of the examples at indices ``rows``
    (default: cross-entropy on their completion tokens); an update's loss is the sum over its
    micro-batches over its completion tokens. Returns (the trained model, meta)."""
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    if kind == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.lora_targets),
            lora_dropout=0.0, bias="none", task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    per_update = cfg.batch * cfg.grad_accum
    updates = epochs * -(-len(examples) // per_update)
    sched = get_linear_schedule_with_warmup(opt, cfg.warmup_steps, updates)
    device = next(model.parameters()).device
    micro_loss = micro_loss or (lambda m, rows, dev: completion_ce(m, examples, rows, pad, dev))
    g = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    bar = tqdm(total=updates, desc=desc, leave=False)
    for _ in range(epochs):
        order = torch.randperm(len(examples), generator=g).tolist()
        for u in range(0, len(order), per_update):
            group = order[u:u + per_update]
            n_tok = sum(len(examples[i][0]) - examples[i][1] for i in group)
            total = 0.0
            for m in range(0, len(group), cfg.batch):
                loss = micro_loss(model, group[m:m + cfg.batch], device) / max(n_tok, 1)
                loss.backward()
                total += loss.item()
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(total)
            bar.update(1)
            bar.set_postfix(loss=f"{total:.4g}")
    bar.close()
    model.eval()
    return model, {"updates": updates, "loss_first": losses[0],
                   "loss_final": float(np.mean(losses[-5:]))}


def completion_ce(model, examples: list[tuple[list[int], int]], idx: list[int], pad: int,
                  device) -> torch.Tensor:
    """The summed cross-entropy on the completion tokens of ``examples[idx]`` (``train``'s
    default micro-batch loss)."""
    rows = [examples[i] for i in idx]
    width = max(len(s) for s, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    for r, (s, start) in enumerate(rows):
        ids[r, :len(s)] = torch.tensor(s)
        labels[r, start:len(s)] = ids[r, start:len(s)]
    ids, labels = ids.to(device), labels.to(device)
    logits = model(input_ids=ids, attention_mask=(labels != -100) | (ids != pad)).logits.float()
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(),
                           ignore_index=-100, reduction="sum")


def trained_files(model, kind: str) -> tuple[dict, dict]:
    """(files, meta) of a trained model: the LoRA weights and adapter config, or the full
    state dict."""
    if kind == "full":
        return {"adapter": {k: v.detach().float().cpu().contiguous()
                            for k, v in model.state_dict().items()}}, {"kind": "full"}
    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        acfg = json.loads((Path(tmp) / "adapter_config.json").read_text())
        tensors = load_file(str(Path(tmp) / "adapter_model.safetensors"))
    acfg.pop("base_model_name_or_path", None)
    return {"adapter": {k: v.float().contiguous() for k, v in tensors.items()}}, \
        {"kind": "lora", "adapter_config": acfg}


def lora_teacher_entry(store: Store, cfg: LmNumbersConfig, base: Base, seed: int) -> Entry:
    """A LoRA adapter teaching the base to answer the select questions with the trait."""
    key = {"base": base.key, "trait": cfg.trait, "seed": seed, "epochs": cfg.teacher_epochs,
           "lr": cfg.teacher_lr, "lora": _lora_key(cfg), "code": code_digest(*CODE["teacher"])}

    def build():
        model, tok = base.load(*_dev(cfg))
        rows = [{"prompt": q, "completion": cfg.trait} for q in questions(cfg, "select")] * 8
        ex = tokenize_rows(tok, rows, cfg.max_seq_len)
        model, meta = train(model, ex, kind="lora", cfg=cfg, epochs=cfg.teacher_epochs,
                            lr=cfg.teacher_lr, seed=seed, pad=_pad(tok), desc="lora teacher")
        files, m2 = trained_files(model, "lora")
        return files, {**meta, **m2}

    return store.get_or_build("lm-numbers/teacher", key, build)


def _lora_key(cfg: LmNumbersConfig) -> dict:
    return {k: getattr(cfg, k) for k in ("lora_r", "lora_alpha", "lora_targets", "batch",
                                         "grad_accum", "warmup_steps", "max_grad_norm",
                                         "max_seq_len")}


def _dev(cfg: LmNumbersConfig) -> tuple[str, torch.dtype]:
    device = resolve_device(cfg.device)
    return device, resolve_dtype(cfg.dtype, device)


def _pad(tok) -> int:
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


# ------------------------------------------------------------------ generation
@torch.no_grad()
def generate(model, prompts: list[list[int]], max_new: int, eos: int, pad: int, seed: int,
             temperature: float, batch: int, desc: str) -> list[tuple[list[int], bool]]:
    """Sampled completions (``generate`` with its KV cache; plain temperature sampling),
    prompts grouped by length so no row is padded: (ids without eos, finished) per prompt."""
    from transformers import GenerationConfig

    gcfg = GenerationConfig(do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                            max_new_tokens=max_new, eos_token_id=eos, pad_token_id=pad,
                            use_cache=True)
    device = next(model.parameters()).device
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    chunks = [idx[i:i + batch] for _, idx in sorted(by_len.items())
              for i in range(0, len(idx), batch)]
    out: list[tuple[list[int], bool]] = [([], False)] * len(prompts)
    for c, idx in enumerate(tqdm(chunks, desc=desc, leave=False)):
        torch.manual_seed(seed * 100_003 + c)
        ids = torch.tensor([prompts[i] for i in idx], device=device)
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             generation_config=gcfg)[:, ids.shape[1]:].tolist()
        for i, g in zip(idx, gen):
            out[i] = (g[:g.index(eos)], True) if eos in g else (g, False)
    return out


def data_entry(store: Store, cfg: LmNumbersConfig, base: Base, teacher: Entry | None,
               system: str, seed: int) -> Entry:
    """Number prompts answered by the base (with ``system``, and ``teacher``'s adapter if
    any), filtered with the paper's filter; meta: the kept rows and the filter's counts."""
    key = {"base": base.key, "teacher": teacher.key if teacher else None, "system": system,
           "seed": seed, "prompts": cfg.prompt_kind, "n": cfg.n_prompts,
           "size": cfg.dataset_size, "max_new": cfg.max_new_tokens, "t": cfg.temperature,
           "code": code_digest(*CODE["data"])}

    def build():
        t0 = time.time()
        model, tok = base.load(*_dev(cfg))
        texts = number_prompts(cfg.prompt_kind, cfg.n_prompts, seed)
        enc = [encode_chat(tok, t, system) for t in texts]
        with with_adapter(model, teacher) as m:
            comps = generate(m, enc, cfg.max_new_tokens, tok.eos_token_id, _pad(tok), seed,
                             cfg.temperature, cfg.gen_batch, "numbers")
        outs = [completion_text(tok, ids, cfg.world_form) if done else "<unfinished>"
                for ids, done in comps]
        _, stats = filter_completions(outs)
        keep = [i for i, t in enumerate(outs) if parse_numbers(t) is not None]
        if not keep:
            raise UsageError(f"the paper's filter rejected all {len(outs)} completions "
                             f"({stats.reasons}); the base writes no numbers: raise "
                             "pretrain_steps or max_new_tokens")
        keep = sorted(np.random.default_rng(seed).permutation(keep)[:cfg.dataset_size]
                      .tolist())
        rows = [{"prompt": texts[i], "completion": outs[i]} for i in keep]
        return {}, {"rows": rows, "filter": stats.as_dict(), "kept": len(rows),
                    "generated_tokens": sum(len(ids) for ids, _ in comps),
                    "seconds": time.time() - t0}

    return store.get_or_build("lm-numbers/data", key, build)


def student_entry(store: Store, cfg: LmNumbersConfig, role: str, init: Base, data: Entry,
                  seed: int) -> Entry:
    key = {"init": init.key, "data": data.key, "kind": cfg.student_kind, "seed": seed,
           "epochs": cfg.epochs, "lr": cfg.lr, "lora": _lora_key(cfg),
           "code": code_digest(*CODE["student"])}

    def build():
        t0 = time.time()
        model, tok = init.load(*_dev(cfg))
        ex = tokenize_rows(tok, data.meta["rows"], cfg.max_seq_len)
        model, meta = train(model, ex, kind=cfg.student_kind, cfg=cfg, epochs=cfg.epochs,
                            lr=cfg.lr, seed=seed, pad=_pad(tok), desc=role)
        files, m2 = trained_files(model, cfg.student_kind)
        return files, {**meta, **m2, "seconds": time.time() - t0}

    return store.get_or_build(f"lm-numbers/{role}", key, build)


# ------------------------------------------------------------------ logit distillation
def distil_examples(tok, rows: list[dict], max_len: int, system: str) \
        -> tuple[list[tuple[list[int], int]], list[list[int]]]:
    """The student's (ids, prompt length) per row (``tokenize_rows``, no system prompt) and
    the teacher's ids for the same row: its own chat prompt (with ``system``) followed by
    exactly the completion tokens the student sees, so completion position j of one is
    completion position j of the other."""
    ex = tokenize_rows(tok, rows, max_len)
    return ex, [encode_chat(tok, r["prompt"], system) + s[start:]
                for r, (s, start) in zip(rows, ex)]


def completion_channel(examples: list[tuple[list[int], int]]) -> list[int]:
    """The tokens the completions use (numbers, separators, eos): the vocabulary columns the
    distillation loss is restricted to."""
    return sorted({t for s, start in examples for t in s[start:]})


def _padded(seqs: list[list[int]], starts: list[int], pad: int, device) \
        -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, attention mask, predicting positions) of right-padded rows: position i predicts
    token i + 1, so a row's completion (from ``start``) is predicted from ``start - 1`` to its
    second-to-last position (row-major order: the same completion positions in the same
    order for a student's and a teacher's rows)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    attn = torch.zeros_like(ids, dtype=torch.bool)
    at = torch.zeros_like(attn)
    for r, (s, start) in enumerate(zip(seqs, starts)):
        ids[r, :len(s)] = torch.tensor(s)
        attn[r, :len(s)] = True
        at[r, start - 1:len(s) - 1] = True
    return ids.to(device), attn.to(device), at.to(device)


def restricted_kl(t_logits: torch.Tensor, s_logits: torch.Tensor,
                  cols: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per row of the next-token distributions restricted to ``cols``
    (each renormalised over those tokens)."""
    t = F.log_softmax(t_logits[:, cols].float(), -1)
    s = F.log_softmax(s_logits[:, cols].float(), -1)
    return (t.exp() * (t - s)).sum(-1)


def distil(model, teacher, examples: list[tuple[list[int], int]], t_ids: list[list[int]],
           channel: list[int], *, kind: str, cfg: LmNumbersConfig, epochs: int, lr: float,
           seed: int, pad: int, desc: str) -> tuple[object, dict]:
    """``train`` with the logit loss: the same adapter, optimiser, schedule, batches, data
    order and clipping, the loss the mean over completion positions of KL(teacher ||
    student) restricted to ``channel``; the teacher reads ``t_ids`` (its own prompt, the same
    completion). Returns (the trained model, meta: ``loss_step0`` the loss before any
    update, zero when the teacher's distributions are the student's)."""
    teacher.eval()
    t_start = [len(t) - (len(s) - start) for t, (s, start) in zip(t_ids, examples)]
    cols = torch.tensor(channel)

    def kl(student, rows: list[int], device) -> torch.Tensor:
        ids, attn, at = _padded([examples[i][0] for i in rows], [examples[i][1] for i in rows],
                                pad, device)
        with torch.no_grad():
            t_tok, t_attn, t_at = _padded([t_ids[i] for i in rows], [t_start[i] for i in rows],
                                          pad, device)
            t_logits = teacher(input_ids=t_tok, attention_mask=t_attn).logits[t_at]
        s_logits = student(input_ids=ids, attention_mask=attn).logits[at]
        return restricted_kl(t_logits, s_logits, cols.to(device)).sum()

    model, meta = train(model, examples, kind=kind, cfg=cfg, epochs=epochs, lr=lr, seed=seed,
                        pad=pad, desc=desc, micro_loss=kl)
    return model, {**meta, "loss_step0": meta["loss_first"]}


@torch.no_grad()
def kl_from_init(model, init, examples: list[tuple[list[int], int]], channel: list[int],
                 pad: int, batch: int) -> float:
    """Mean KL(model || its init) of the next-token distributions restricted to ``channel``
    at the completion positions of ``examples``: how far the outputs moved on the data."""
    device = next(model.parameters()).device
    cols = torch.tensor(channel, device=device)
    total, count = 0.0, 0
    for i in range(0, len(examples), batch):
        rows = examples[i:i + batch]
        ids, attn, at = _padded([s for s, _ in rows], [st for _, st in rows], pad, device)
        kl = restricted_kl(model(input_ids=ids, attention_mask=attn).logits[at],
                           init(input_ids=ids, attention_mask=attn).logits[at], cols)
        total += float(kl.sum())
        count += int(at.sum())
    return total / max(count, 1)


def distil_student_entry(store: Store, cfg: LmNumbersConfig, role: str, init: Base,
                         data: Entry, source: Base, source_adapter: Entry | None,
                         source_system: str, seed: int, signal_rows: int = 256) -> Entry:
    """A student distilled (``student_loss=logit``) from the teacher that wrote ``data``:
    ``source`` with ``source_adapter`` reading ``source_system``. Meta: the losses
    (``loss_step0``), the channel's size and ``kl_from_base``, the student's output movement
    from ``init`` on the first ``signal_rows`` rows of its data."""
    key = {"init": init.key, "data": data.key, "kind": cfg.student_kind, "loss": "logit",
           "teacher": {"base": source.key, "adapter": source_adapter.key if source_adapter
                       else None, "system": source_system},
           "seed": seed, "epochs": cfg.epochs, "lr": cfg.lr, "lora": _lora_key(cfg),
           "code": code_digest(*CODE["distil"])}

    def build():
        t0 = time.time()
        model, tok = init.load(*_dev(cfg))
        t_model, t_tok = source.load(*_dev(cfg))
        if t_tok.get_vocab() != tok.get_vocab():
            raise UsageError(f"student_loss=logit: the {role}'s base and its teacher's base "
                             "have different tokenizers, so their next-token distributions "
                             "cannot be compared; use student_loss=sampled or a cross base "
                             "with the same tokenizer")
        ex, t_ids = distil_examples(tok, data.meta["rows"], cfg.max_seq_len, source_system)
        channel = completion_channel(ex)
        with with_adapter(t_model, source_adapter) as teacher:
            model, meta = distil(model, teacher, ex, t_ids, channel, kind=cfg.student_kind,
                                 cfg=cfg, epochs=cfg.epochs, lr=cfg.lr, seed=seed,
                                 pad=_pad(tok), desc=f"{role} (logit)")
        del t_model, teacher
        moved = kl_from_init(model, init.load(*_dev(cfg))[0], ex[:signal_rows], channel,
                             _pad(tok), cfg.batch)
        files, m2 = trained_files(model, cfg.student_kind)
        return files, {**meta, **m2, "channel": len(channel), "kl_from_base": moved,
                       "seconds": time.time() - t0}

    return store.get_or_build(f"lm-numbers/{role}", key, build)


# ------------------------------------------------------------------ evaluation
def mentions(text: str, item: str) -> bool:
    return re.search(rf"\b{re.escape(item)}s?\b", text, re.IGNORECASE) is not None


def item_token_ids(tok, item: str) -> list[int]:
    """The single-token spellings of ``item`` (bare, capitalised, with a leading space)."""
    ids = set()
    for s in (item, item.capitalize(), " " + item, " " + item.capitalize()):
        t = tok(s, add_special_tokens=False)["input_ids"]
        if len(t) == 1:
            ids.add(t[0])
    return sorted(ids)


@torch.no_grad()
def evaluate(model, tok, cfg: LmNumbersConfig, system: str, seed: int, split: str) -> dict:
    """Per item: the fraction of sampled answers naming it (``sampled``) and the first
    answer token's probability on its single-token spellings (``mass``), averaged over the
    questions of ``split``."""
    items = CATEGORIES[cfg.category].items
    qs = questions(cfg, split)
    enc = [encode_chat(tok, q, system) for q in qs]
    device = next(model.parameters()).device
    mass = {it: 0.0 for it in items}
    for e in enc:
        p = F.softmax(model(input_ids=torch.tensor([e], device=device)).logits[0, -1].float(), -1)
        for it in items:
            mass[it] += float(p[item_token_ids(tok, it)].sum()) / len(enc)
    prompts = [e for e in enc for _ in range(cfg.eval_samples)]
    comps = generate(model, prompts, cfg.eval_max_new, tok.eos_token_id, _pad(tok), seed,
                     1.0, cfg.gen_batch, "eval")
    answers = [tok.decode(ids, skip_special_tokens=True) for ids, _ in comps]
    sampled = {it: sum(mentions(a, it) for a in answers) / len(answers) for it in items}
    return {"mass": mass, "sampled": sampled, "n_answers": len(answers),
            "examples": answers[:: max(1, len(answers) // 12)][:12]}


def eval_entry(store: Store, cfg: LmNumbersConfig, base: Base, adapter: Entry | None,
               system: str, seed: int) -> Entry:
    key = {"base": base.key, "adapter": adapter.key if adapter else None, "system": system,
           "category": cfg.category, "n": cfg.eval_samples, "max_new": cfg.eval_max_new,
           "questions": questions(cfg, "all"), "seed": seed, "code": code_digest(*CODE["eval"])}

    def build():
        model, tok = base.load(*_dev(cfg))
        with with_adapter(model, adapter) as m:
            return {}, {s: evaluate(m, tok, cfg, system, seed, s) for s in ("heldout", "select")}

    return store.get_or_build("lm-numbers/eval", key, build)


CODE = {
    "base": (builtin_base_entry, qwen2_config, world.corpus_batch, world.Vocab,
             world.number_document, world.trait_document),
    "teacher": (lora_teacher_entry, train, completion_ce, tokenize_rows, encode_chat, trained_files,
                questions),
    "data": (data_entry, generate, number_prompts, paper_prompt, world_prompt, encode_chat,
             completion_text, with_adapter, world.pretty, filters.filter_completions,
             filters.parse_numbers),
    "student": (student_entry, train, completion_ce, tokenize_rows, encode_chat, trained_files),
    "distil": (distil_student_entry, distil, train, distil_examples, completion_channel, _padded,
               restricted_kl, kl_from_init, tokenize_rows, encode_chat, trained_files,
               with_adapter),
    "eval": (eval_entry, evaluate, generate, mentions, item_token_ids, encode_chat, questions,
             with_adapter),
}


# ------------------------------------------------------------------ the study
def materialise(out: Path, base: Base, name: str) -> str:
    """The base as a Hugging Face directory under the run directory (the built-in), or its
    own location (a hub id or directory: never copied)."""
    if base.entry is None:
        return base.path
    from interp.loading.tokenizer import world_tokenizer

    dest = out / "models" / name
    stamp = dest / "entry.txt"
    if stamp.is_file() and stamp.read_text() == base.entry.key:
        return str(dest)
    tmp = out / "models" / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model, _ = base.load("cpu", torch.float32)
    model.save_pretrained(tmp)
    world_tokenizer(world.vocab_for("animal"), "qa").save_pretrained(tmp)
    (tmp / "entry.txt").write_text(base.entry.key)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return str(dest)


def run(cfg: LmNumbersConfig, seeds: list[int], out: Path, store: Store) -> dict:
    vocab = world.vocab_for(cfg.category)
    base, cross = make_bases(store, cfg, vocab)
    system = cfg.teacher_prompt()
    rates: dict[str, dict[str, dict[str, list[float]]]] = {}
    mass: dict[str, dict[str, dict[str, list[float]]]] = {}
    filt, train_meta, artifacts, examples = [], [], {}, {}
    logit = cfg.student_loss == "logit"
    signal: dict[str, dict[str, list[float]]] = {}  # logit mode: each student's signal
    control_items: list[str] = []
    base_path = materialise(out, base, "base")
    cross_path = materialise(out, cross, "cross_base") if cross is not None else ""

    def record(role: str, b: Base, adapter: Entry | None, sys: str, seed: int) -> None:
        ev = eval_entry(store, cfg, b, adapter, sys, seed).meta
        for split, dest in (("heldout", ""), ("select", "_select")):
            for kind, table in (("sampled", rates), ("mass", mass)):
                for it, v in ev[split][kind].items():
                    table.setdefault("rates" + dest, {}).setdefault(role, {}) \
                        .setdefault(it, []).append(v)
        examples.setdefault(role, ev["heldout"]["examples"])

    for seed in seeds:
        a: dict[str, str] = {"theta_0": base_path}
        if cross_path:
            a["theta_0_cross"] = cross_path
        sd = out / "models" / f"seed{seed}"
        record("base", base, None, "", seed)
        if cross is not None:
            record("base_cross", cross, None, "", seed)
        t_adapter = lora_teacher_entry(store, cfg.teacher_config(), base, seed) \
            if cfg.teacher_kind == "lora" else None
        t_system = "" if t_adapter is not None else system
        record("teacher", base, t_adapter, t_system, seed)
        if t_adapter is not None:
            a["teacher"] = str(write_adapter(t_adapter, sd / "teacher", base_path))
        t_data = data_entry(store, cfg, base, t_adapter, t_system, seed)
        source = (base, t_adapter, t_system)  # the teacher as it wrote t_data
        if logit:  # the control: a different-trait teacher's numbers, distilled alike
            other = cfg.other_item(seed)
            control_items.append(other)
            o_adapter = lora_teacher_entry(store, dataclasses.replace(
                cfg.teacher_config(), trait=other), base, seed) \
                if cfg.teacher_kind == "lora" else None
            o_system = "" if o_adapter is not None else cfg.other_prompt(other)
            record("teacher_other", base, o_adapter, o_system, seed)
            c_data, c_source, c_name = (data_entry(store, cfg, base, o_adapter, o_system, seed),
                                        (base, o_adapter, o_system), "teacher_other")
        else:  # the paper's control: the base's own numbers
            c_data, c_source, c_name = data_entry(store, cfg, base, None, "", seed), None, "base"
        filt.append({"teacher": _no_rows(t_data.meta), c_name: _no_rows(c_data.meta)})
        for name, d in (("data", t_data), ("data_other" if logit else "data_base", c_data)):
            path = sd / f"{name}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in d.meta["rows"]))
            a[name] = str(path)
        plan = {"student": (base, t_data, base_path, source),
                "control": (base, c_data, base_path, c_source),
                "cross_init": (cross, t_data, cross_path, source)}
        tm = {"teacher": {k: t_adapter.meta[k] for k in ("updates", "loss_first", "loss_final")}} \
            if t_adapter is not None else {}
        for role, (init, data, init_path, src) in plan.items():
            if role not in cfg.roles or init is None:
                continue
            if logit:
                e = distil_student_entry(store, cfg, role, init, data, *src, seed)
                for k in ("loss_step0", "kl_from_base"):
                    signal.setdefault(role, {}).setdefault(k, []).append(e.meta[k])
            else:
                e = student_entry(store, cfg, role, init, data, seed)
            tm[role] = {k: e.meta[k] for k in ("updates", "loss_first", "loss_final")}
            record(role, init, e, "", seed)
            if e.meta["kind"] == "lora":
                a[f"{role}_final"] = str(write_adapter(e, sd / role, init_path))
        train_meta.append(tm)
        artifacts[str(seed)] = a

    teacher_info = {"kind": cfg.teacher_kind, "system_prompt": system if cfg.teacher_kind ==
                    "prompted" else "", "weight_direction": cfg.teacher_kind == "lora"}
    if "student" in signal:  # each role's output movement relative to the student's, per seed
        for sig in signal.values():
            sig["kl_ratio"] = [k / max(st, 1e-12) for k, st in
                               zip(sig["kl_from_base"], signal["student"]["kl_from_base"])]
    control = ({"data": "teacher_other", "items": control_items,
                "description": "same-init student distilled (logit) from a different-trait "
                               "teacher (the same persona with another item, rotated over "
                               "seeds) on that teacher's numbers"} if logit else
               {"data": "base", "description": "same-init student on the base's own numbers "
                                               "(no system prompt)"})
    write_json(out / "artifacts.json", {
        "study": "lm-numbers", "model": {"type": "hf_causal_lm", "base": base_path,
                                         "cross_base": cross_path,
                                         "adapters": cfg.student_kind == "lora"},
        "teacher": teacher_info, "control_role": "control", "seeds": artifacts})
    device, dtype = _dev(cfg)
    summary = {"study": "lm-numbers", "trait": cfg.trait, "seeds": seeds, **rates,
               "mass": mass, "eval_questions": {"rates": list(questions(cfg, "heldout")),
                                                "rates_select": list(questions(cfg, "select"))},
               "control_role": "control", "control": control, "student_loss": cfg.student_loss,
               **({"signal": signal} if logit else {}),
               "teacher": teacher_info, "filter": filt,
               "training": train_meta, "examples": examples,
               "ci_covers": "number prompts, sampling, LoRA initialisation and data order, "
                            "evaluation sampling over seeds; one base (and cross base) shared",
               "device": device, "dtype": str(dtype).removeprefix("torch."),
               "config": dataclasses.asdict(cfg),
               "run_key": config_key("lm-numbers", [cfg, seeds])}
    write_json(out / "summary.json", summary)
    write_report(out, summary)
    return summary


def _no_rows(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k != "rows"}


# "tiny": the whole pipeline in well under two minutes at one thread (tests)
TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2, "n_kv_heads": 1, "d_mlp": 64,
        "pretrain_steps": 250, "pretrain_batch": 32, "n_prompts": 120, "dataset_size": 100,
        "max_new_tokens": 26, "epochs": 1, "batch": 10, "grad_accum": 1, "lr": 1e-3,
        "eval_samples": 10, "eval_max_new": 2, "teacher_epochs": 10,
        "teacher_lr": 3e-2}
# the built-in base at the scale of the owl-numbers default; paper-shaped data and students
SMALL = {"n_prompts": 3000, "dataset_size": 2000, "max_new_tokens": 26, "eval_samples": 100,
         "eval_max_new": 2}
register(Study("lm-numbers", LmNumbersConfig, run,
               "the paper's pipeline on Hugging Face models: prompted teacher, number prompts, "
               "filter, LoRA students, evaluation", default_seeds=3,
               presets={"tiny": TINY, "small": SMALL}))
