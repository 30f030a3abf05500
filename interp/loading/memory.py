"""The memory plan of a report on your own models: bytes per stage, from a model's config.

1. Parameters are counted exactly by building the ``transformers`` model from its config on
   the ``meta`` device (no memory, no download): all of them, and those in the attention
   and MLP projections that a LoRA adapter on every projection adapts.
2. Each stage of ``python -m interp.align`` / ``interp.fingerprint`` then holds:
   ``load`` - the base in the run's dtype on the device, and on the host for a moment the
   Hugging Face copy beside TransformerLens's (2 x weights);
   ``adapters`` - per adapter its LoRA factors (``interp.loading.sources.LowRankDelta``:
   dense deltas are built one parameter at a time), plus, while one adapter is applied, a
   host-side copy of the base tensors it changes;
   ``sign check`` - dense dT, the differentiated copy of its parameters, their gradient and
   its running sum over chunks, and one chunk's saved activations (about
   ``SAVED_PER_TOKEN`` values per token per layer) and log-probabilities;
   ``Gauss-Newton / attribution`` - dT and one chunk's JVP (activations and tangents);
   ``activations`` - one hook's residual stream for every data row, per role, streamed to
   the activation cache one hook at a time (float32 on the host).
The device's peak is the base plus the largest working stage (factors and activations
live on the host).

Owns: ``MODELS``, ``param_counts``, ``plan``. Imports nothing from interp.
"""

from __future__ import annotations

import dataclasses

# the public config.json values of the models the plan covers (no hub access here)
MODELS: dict[str, dict] = {
    "Qwen2.5-7B-Instruct": {
        "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
        "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
        "vocab_size": 152064, "tie_word_embeddings": False},
    "Qwen2.5-1.5B-Instruct": {
        "model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960,
        "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
        "vocab_size": 151936, "tie_word_embeddings": True},
    "Llama-3.2-1B-Instruct": {
        "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
        "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
        "vocab_size": 128256, "tie_word_embeddings": True, "head_dim": 64},
}
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SAVED_PER_TOKEN = 34  # activations a decoder layer saves for backward, in units of d_model
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def param_counts(config: dict) -> tuple[int, int, int]:
    """(all parameters, parameters in the attention and MLP projections, the sum of those
    projections' in + out sizes: a rank-r LoRA on all of them has r times that), exactly."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    total = sum(p.numel() for p in model.parameters())
    proj = [p for n, p in model.named_parameters()
            if n.endswith(".weight") and n.split(".")[-2] in PROJECTIONS]
    return total, sum(p.numel() for p in proj), sum(sum(p.shape) for p in proj)


@dataclasses.dataclass(frozen=True)
class Workload:
    dtype: str = "bfloat16"
    adapters: int = 3  # teacher, student, control
    lora_r: int = 32
    rows: int = 256  # data rows whose activations are captured
    probe_rows: int = 64  # rows of the sign check, GN form and attribution
    chunk: int = 8  # probe rows per pass (interp.analysis.external.ExternalConfig.chunk)
    seq: int = 128  # tokens per row (prompt + completion)


def plan(config: dict, w: Workload = Workload()) -> dict[str, int]:
    """Bytes per stage (see the module doc) and ``peak`` on the device."""
    total, adapted, in_out = param_counts(config)
    b = BYTES[w.dtype]
    d, layers, vocab = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    weights = total * b
    factors = w.adapters * w.lora_r * in_out * 4  # float32 A and B, as peft saves them
    chunk_tokens = w.chunk * w.seq
    logits = chunk_tokens * vocab * 4  # float32 log-softmax of a chunk's logits
    saved = chunk_tokens * layers * SAVED_PER_TOKEN * d * b
    stages = {
        "load: base weights (device)": weights,
        "load: transient host copy": 2 * weights,
        "adapters: LoRA factors (host)": factors,
        "adapters: host copy of the base while one is applied": adapted * b,
        # dense dT, the parameters A.gradient differentiates (a copy), their gradient and
        # the running sum over chunks, the backward's saved activations, teacher + student
        # log-probabilities
        "sign check: 4 x adapted weights + one chunk's activations + logits":
            4 * adapted * b + saved + 2 * logits,
        "Gauss-Newton / attribution: dT + one chunk's JVP": adapted * b
            + 2 * chunk_tokens * layers * SAVED_PER_TOKEN * d * b + 2 * logits,
        "activations: one hook, all rows, per role (host, float32)": w.rows * w.seq * d * 4,
    }
    work = max(stages["sign check: 4 x adapted weights + one chunk's activations + logits"],
               stages["Gauss-Newton / attribution: dT + one chunk's JVP"])
    stages["peak on the device"] = weights + work
    stages["parameters"] = total
    stages["adapted parameters"] = adapted
    return stages
