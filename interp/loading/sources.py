"""Model sources behind one loader: the toolkit's own runs, Hugging Face models, LoRA adapters.

    loaded = load_model("path/to/hf_dir")          # or "hf:Qwen/Qwen2.5-7B-Instruct"
    loaded = load_model("peft:adapter_dir", base=base_loaded)
    loaded = load_model("toolkit:runs/owl-numbers-abc#0/teacher")

1. A spec names its source by prefix (``toolkit:``, ``hf:``, ``peft:``) or by what it is: a
   directory with ``adapter_config.json`` is an adapter, one with ``config.json`` a
   Hugging Face model, ``owner/name`` that is no local path a hub id (read from the local
   Hugging Face cache; these machines have no hub access).
2. A Hugging Face model becomes a TransformerLens ``HookedTransformer`` through
   TransformerLens's own config and weight conversion, with no processing (no LayerNorm
   folding, no centring: the weights are the checkpoint's), so hook names are TransformerLens's
   (``blocks.{i}.hook_resid_post``) and parameter names are its (``blocks.{i}.attn.W_Q``).
   A ``lm_head.bias`` in the checkpoint (GPT-2 exports of the toolkit's models) becomes
   ``unembed.b_U``.
3. A LoRA adapter is its weight delta: per adapted module B @ A * scale (``ADAPTER_MAP`` maps
   each Hugging Face module onto the base's TransformerLens parameter), kept as its factors
   (``LowRankDelta``: dense one parameter at a time, when asked), never a merged copy.
   Its model is the base with the delta applied in place for the duration of a ``with``
   block (``Loaded.weights()``), the base's own values restored exactly afterwards.

Owns: ``ModelSpec``, ``Loaded``, ``SOURCES``, ``load_model``, ``adapter_delta``, ``LowRankDelta``,
``pick_device``, ``DTYPES``. Must not import: analysis, reports, the CLIs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import einops
import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.errors import ConfigError, UsageError

log = logging.getLogger("interp.loading.sources")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def pick_device(device: str = "auto") -> str:
    """``auto``: cuda, then mps, then cpu; anything else is checked to exist."""
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: this torch build sees no CUDA device; use "
                         "--device cpu (or auto)")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise UsageError(f"invalid --device {device!r}; valid: auto, cpu, cuda, cuda:N, mps")
    return device


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from: ``source`` (a key of ``SOURCES``) and its ``location``."""

    source: str
    location: str

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"unknown model source {self.source!r}; valid: "
                              f"{', '.join(SOURCES)}")

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        prefix, sep, rest = text.partition(":")
        if sep and prefix in SOURCES:
            return cls(prefix, rest)
        path = Path(text)
        if (path / "adapter_config.json").is_file():
            return cls("peft", text)
        if (path / "config.json").is_file():
            return cls("hf", text)
        if path.exists():
            raise UsageError(f"{text} is neither a Hugging Face model directory (config.json) "
                             "nor a LoRA adapter directory (adapter_config.json); pass one of "
                             "those, a hub id, or toolkit:RUN_DIR#SEED/ROLE")
        if HUB_ID.match(text) and not text.startswith((".", "/")):
            return cls("hf", text)
        raise UsageError(f"model directory {text} does not exist; pass an existing directory, "
                         "a hub id (owner/name) or toolkit:RUN_DIR#SEED/ROLE")


@dataclasses.dataclass
class Loaded:
    """A model ready for the analyses: a TransformerLens model (for an adapter, its base's),
    its tokenizer, and for an adapter the delta it applies."""

    spec: ModelSpec
    model: HookedTransformer
    tokenizer: object | None
    delta: Mapping[str, Tensor] | None = None  # adapters: TL name -> B @ A * scale (lazy)
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.spec.source}:{self.spec.location}"

    @contextlib.contextmanager
    def weights(self) -> Iterator[HookedTransformer]:
        """The model holding this source's weights for the block: an adapter's delta is added
        to the shared base in place and the base's own tensors (kept on the CPU) are put
        back afterwards, bit for bit."""
        if self.delta is None:
            yield self.model
            return
        own = dict(self.model.named_parameters())
        saved = {k: own[k].detach().to("cpu", copy=True) for k in self.delta}
        try:
            with torch.no_grad():
                for k, d in self.delta.items():
                    own[k].add_(d.to(own[k].device, own[k].dtype))
            yield self.model
        finally:
            with torch.no_grad():
                for k, v in saved.items():
                    own[k].copy_(v)


# ------------------------------------------------------------------ Hugging Face models
def resolve_hf(location: str) -> Path:
    """A local directory for a Hugging Face model: the path itself, or a hub id's snapshot
    in the local Hugging Face cache."""
    path = Path(location)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"{location} has no config.json; pass a directory written by "
                             "save_pretrained")
        return path
    if path.exists() or not HUB_ID.match(location):
        raise UsageError(f"model directory {location} does not exist; pass an existing "
                         "directory or a hub id (owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(location, local_files_only=True))
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"hub id {location} is not in the local Hugging Face cache ({first}); "
                         f"download it first (huggingface-cli download {location}) or pass "
                         "a local directory") from None


def _hf_config(path: Path) -> dict:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}/config.json is unreadable ({e}); re-save the model") from None


def _lm_head_bias(path: Path) -> Tensor | None:
    from safetensors import safe_open

    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), "pt") as sf:
            if "lm_head.bias" in sf.keys():
                return sf.get_tensor("lm_head.bias")
    return None


def load_hf(spec: ModelSpec, device: str = "cpu", dtype: str = "float32",
            base: Loaded | None = None) -> Loaded:
    """A Hugging Face causal LM as a HookedTransformer, weights unprocessed."""
    import transformer_lens.loading_from_pretrained as loading
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolve_hf(spec.location)
    arch = (_hf_config(path).get("architectures") or ["?"])[0]
    torch_dtype = DTYPES[dtype]
    try:  # TransformerLens's config first: cheap, and it names unsupported architectures
        cfg = loading.get_pretrained_model_config(
            str(path), hf_cfg=AutoConfig.from_pretrained(str(path)).to_dict(), fold_ln=False,
            device=device, dtype=torch_dtype)
    except NotImplementedError:
        raise UsageError(
            f"{spec.location}: architecture {arch} is not supported by TransformerLens; "
            f"supported: {', '.join(sorted(supported_architectures()))} (Gemma and OLMo are "
            "recognised by name: keep the family in the directory name, e.g. gemma-2-2b)") \
            from None
    hf_model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
    state = loading.get_pretrained_state_dict(str(path), cfg, hf_model, dtype=torch_dtype)
    bias = _lm_head_bias(path)
    if bias is not None:
        state["unembed.b_U"] = bias.to(torch_dtype)
    from interp.loading.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(path) \
        if (path / "tokenizer_config.json").is_file() or (path / "tokenizer.json").is_file() \
        else None
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.load_and_process_state_dict(
        state, fold_ln=False, center_writing_weights=False, center_unembed=False,
        fold_value_biases=False, refactor_factored_attn_matrices=False)
    del hf_model
    model.to(device)
    return Loaded(spec, model.eval(), tokenizer,
                  info={"path": str(path), "architecture": arch})


def supported_architectures() -> set[str]:
    import inspect

    import transformer_lens.loading_from_pretrained as loading

    src = inspect.getsource(loading.convert_hf_model_config)
    return set(re.findall(r'architecture == "(\w+)"', src))


# ------------------------------------------------------------------ LoRA adapters
def _tl(fmt: str) -> Callable[[re.Match], str]:
    return lambda m: fmt.format(*m.groups())


def _heads_in(d: Tensor, n: int) -> Tensor:  # [(n h), m] -> [n, m, h]
    return einops.rearrange(d, "(n h) m -> n m h", n=n)


def _heads_out(d: Tensor, n: int) -> Tensor:  # [m, (n h)] -> [n, h, m]
    return einops.rearrange(d, "m (n h) -> n h m", n=n)


def _kv(cfg) -> int:
    return getattr(cfg, "n_key_value_heads", None) or cfg.n_heads


def _kv_name(cfg, x: str) -> str:
    return f"_W_{x}" if getattr(cfg, "n_key_value_heads", None) else f"W_{x}"


# Hugging Face module (regex) -> TransformerLens parameters, each a function of the delta
# of the module's weight in torch's [out, in] layout and the model config.
ADAPTER_MAP: list[tuple[str, Callable]] = [
    (r"layers\.(\d+)\.self_attn\.q_proj$", lambda i, d, c: {
        f"blocks.{i}.attn.W_Q": _heads_in(d, c.n_heads)}),
    (r"layers\.(\d+)\.self_attn\.k_proj$", lambda i, d, c: {
        f"blocks.{i}.attn.{_kv_name(c, 'K')}": _heads_in(d, _kv(c))}),
    (r"layers\.(\d+)\.self_attn\.v_proj$", lambda i, d, c: {
        f"blocks.{i}.attn.{_kv_name(c, 'V')}": _heads_in(d, _kv(c))}),
    (r"layers\.(\d+)\.self_attn\.o_proj$", lambda i, d, c: {
        f"blocks.{i}.attn.W_O": _heads_out(d, c.n_heads)}),
    (r"layers\.(\d+)\.mlp\.gate_proj$", lambda i, d, c: {f"blocks.{i}.mlp.W_gate": d.T}),
    (r"layers\.(\d+)\.mlp\.up_proj$", lambda i, d, c: {f"blocks.{i}.mlp.W_in": d.T}),
    (r"layers\.(\d+)\.mlp\.down_proj$", lambda i, d, c: {f"blocks.{i}.mlp.W_out": d.T}),
    # GPT-2: Conv1D modules (peft's fan_in_fan_out); the delta arrives as [out, in] too
    (r"h\.(\d+)\.attn\.c_attn$", lambda i, d, c: {
        f"blocks.{i}.attn.W_{x}": _heads_in(part, c.n_heads)
        for x, part in zip("QKV", d.split(c.d_model, 0))}),
    (r"h\.(\d+)\.attn\.c_proj$", lambda i, d, c: {
        f"blocks.{i}.attn.W_O": _heads_out(d, c.n_heads)}),
    (r"h\.(\d+)\.mlp\.c_fc$", lambda i, d, c: {f"blocks.{i}.mlp.W_in": d.T}),
    (r"h\.(\d+)\.mlp\.c_proj$", lambda i, d, c: {f"blocks.{i}.mlp.W_out": d.T}),
]


def _adapter_files(path: Path) -> tuple[dict, dict[str, Tensor]]:
    from safetensors.torch import load_file

    try:
        acfg = json.loads((path / "adapter_config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}/adapter_config.json is unreadable ({e})") from None
    if acfg.get("peft_type", "LORA") != "LORA":
        raise UsageError(f"{path} is a {acfg.get('peft_type')} adapter; only LoRA adapters "
                         "are supported")
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        raise UsageError(f"{path} has no adapter_model.safetensors; save the adapter with "
                         "save_pretrained (safetensors)")
    return acfg, load_file(str(weights))


class LowRankDelta(Mapping):
    """An adapter's weight delta by TransformerLens parameter name, kept as its LoRA factors:
    ``delta[name]`` builds the dense B @ A * scale (mapped onto ``name``) when asked and keeps
    nothing, so holding an adapter costs its factors, not a copy of the weights."""

    def __init__(self) -> None:
        self._parts: dict[str, list[tuple]] = {}
        self._meta: dict[str, tuple[torch.dtype, torch.device]] = {}

    def add(self, name: str, A: Tensor, B: Tensor, scale: float, pick: Callable,
            dtype: torch.dtype, device: torch.device) -> None:
        self._parts.setdefault(name, []).append((A, B, scale, pick))
        self._meta[name] = (dtype, device)

    def __getitem__(self, name: str) -> Tensor:
        """The dense delta in float32 (a bfloat16 copy would round the adapter's small
        entries; ``Loaded.weights`` casts when it adds it to the base)."""
        _, device = self._meta[name]
        out = None
        for A, B, scale, pick in self._parts[name]:
            d = pick((B.to(device, torch.float32) @ A.to(device, torch.float32)) * scale)
            out = d if out is None else out + d
        return out

    def __iter__(self):
        return iter(self._parts)

    def __contains__(self, name: object) -> bool:  # without building the tensor
        return name in self._parts

    def __len__(self) -> int:
        return len(self._parts)

    def factor_bytes(self) -> int:
        return sum(A.numel() * A.element_size() + B.numel() * B.element_size()
                   for parts in self._parts.values() for A, B, *_ in parts)


def adapter_delta(path: Path, base: HookedTransformer) -> LowRankDelta:
    """The adapter's weight delta on ``base``'s TransformerLens parameters: B @ A * scale
    per adapted module (scale = alpha / r, or alpha / sqrt(r) for rsLoRA; per-module rank
    and alpha patterns honoured), as a ``LowRankDelta``. A module the base lacks, or of
    another shape, is a one-line error: the adapter was trained on another base."""
    acfg, tensors = _adapter_files(path)
    cfg = base.cfg
    params = dict(base.named_parameters())
    modules = sorted({k.split(".lora_A")[0] for k in tensors if ".lora_A" in k})
    if not modules:
        raise UsageError(f"{path} holds no LoRA weights (lora_A / lora_B)")
    out = LowRankDelta()
    for mod in modules:
        A = tensors[f"{mod}.lora_A.weight"]
        B = tensors[f"{mod}.lora_B.weight"]
        short = mod.removeprefix("base_model.model.")
        key = next((k for k in acfg.get("rank_pattern") or {} if re.search(k, short)), None)
        r = (acfg.get("rank_pattern") or {}).get(key, acfg["r"]) if key else acfg["r"]
        akey = next((k for k in acfg.get("alpha_pattern") or {} if re.search(k, short)), None)
        alpha = (acfg.get("alpha_pattern") or {})[akey] if akey else acfg["lora_alpha"]
        scale = alpha / (r ** 0.5 if acfg.get("use_rslora") else r)
        rule = next(((pat, fn) for pat, fn in ADAPTER_MAP if re.search(pat, short)), None)
        if rule is None:
            raise UsageError(f"{path}: adapted module {short} has no TransformerLens "
                             "counterpart; adapters on attention and MLP projections are "
                             "supported")
        layer = re.search(rule[0], short).group(1)
        shape = torch.empty(B.shape[0], A.shape[1], device="meta")  # [out, in]
        for name, value in rule[1](layer, shape, cfg).items():
            if name not in params or params[name].shape != value.shape:
                have = tuple(params[name].shape) if name in params else "no such parameter"
                raise UsageError(
                    f"adapter {path} does not match the base: its module {short} gives "
                    f"{name} of shape {tuple(value.shape)}, the base has {have}; pass the "
                    f"base it was trained on (its adapter_config.json names "
                    f"{acfg.get('base_model_name_or_path')!r})")

            def pick(d, rule=rule, layer=layer, name=name):
                return rule[1](layer, d, cfg)[name]
            out.add(name, A, B, scale, pick, params[name].dtype, params[name].device)
    return out


def load_peft(spec: ModelSpec, device: str = "cpu", dtype: str = "float32",
              base: Loaded | None = None) -> Loaded:
    path = Path(spec.location)
    if not path.is_dir():
        raise UsageError(f"adapter directory {spec.location} does not exist; pass the directory "
                         "written by the adapter's save_pretrained")
    if base is None:
        acfg, _ = _adapter_files(path)
        named = acfg.get("base_model_name_or_path")
        if not named:
            raise UsageError(f"{path}: pass --base (the adapter names no base model)")
        base = load_model(named, device=device, dtype=dtype)
    if base.delta is not None:
        raise UsageError(f"the base of adapter {path} is itself an adapter; pass a full model")
    delta = adapter_delta(path, base.model)
    return Loaded(spec, base.model, base.tokenizer, delta,
                  info={"path": str(path), "base": base.name, "adapted": len(delta),
                        "factor_bytes": delta.factor_bytes()})


# ------------------------------------------------------------------ the toolkit's own
def load_toolkit(spec: ModelSpec, device: str = "cpu", dtype: str = "float32",
                 base: Loaded | None = None) -> Loaded:
    """``toolkit:RUN_DIR#SEED/ROLE``: a role of a run directory's seed."""
    from interp.loading.tokenizer import world_tokenizer
    from interp.studies import lm
    from interp.studies.runner import load_run
    from interp.studies.world import vocab_for

    m = re.fullmatch(r"(.+)#(\d+)/(\w+)", spec.location)
    if not m:
        raise UsageError(f"toolkit model {spec.location!r}: write toolkit:RUN_DIR#SEED/ROLE, "
                         "e.g. toolkit:runs/owl-numbers-abc#0/teacher")
    run_dir, seed, role = m.groups()
    art, summary = load_run(run_dir)
    roles = art["seeds"].get(seed)
    if roles is None or role not in roles:
        valid = ", ".join(art["seeds"]) if roles is None else ", ".join(roles)
        raise UsageError(f"{run_dir} has no {'seed ' + seed if roles is None else role}; "
                         f"valid: {valid}")
    if art["model"]["type"] != "hooked_transformer":
        raise UsageError(f"{run_dir} is a {summary['study']} run, not a transformer run")
    model = lm.from_artifacts(art["model"], roles[role]).to(device, DTYPES[dtype])
    cfg = summary["config"]
    tok = world_tokenizer(vocab_for(cfg["category"]), cfg.get("number_frame", "qa"))
    return Loaded(spec, model.eval(), tok, info={"run_dir": run_dir, "seed": seed,
                                                 "role": role})


SOURCES: dict[str, Callable[..., Loaded]] = {"toolkit": load_toolkit, "hf": load_hf,
                                             "peft": load_peft}


def load_model(spec: str | ModelSpec, device: str = "cpu", dtype: str = "float32",
               base: Loaded | None = None) -> Loaded:
    """Any source's model (an adapter over ``base``)."""
    if dtype not in DTYPES:
        raise UsageError(f"invalid --dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    log.info("loading %s:%s", spec.source, spec.location)
    return SOURCES[spec.source](spec, device=device, dtype=dtype, base=base)
