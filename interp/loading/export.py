"""Export the toolkit's own models to Hugging Face format (GPT-2 architecture).

1. The toolkit's transformers are TransformerLens ``HookedTransformer``s with LayerNorm,
   learned positions, biased attention and MLP and an untied unembedding: GPT-2's layout,
   the inverse of TransformerLens's ``convert_gpt2_weights`` (Q, K, V fused into ``c_attn``,
   Conv1D weights stored [in, out]).
2. GPT-2 has no bias on ``lm_head``; the toolkit's ``unembed.b_U`` is written beside the
   weights as ``lm_head.bias`` (``transformers`` ignores it; ``interp.loading.sources``
   reads it back, so TransformerLens sees every weight the toolkit trained).
3. The world's tokenizer (``interp.loading.tokenizer``) is saved beside it, and a run's
   number data becomes prompt/completion JSONL (``data_jsonl``) that the tokenizer's chat
   template turns back into exactly the study's rows.
Every directory is written to a temporary sibling and renamed into place: a failed export
leaves nothing half-written.

Owns: ``export_model``, ``export_run``, ``data_jsonl``. Must not import: analysis, reports,
the CLIs.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import einops
import torch
from jaxtyping import Bool, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.errors import UsageError
from interp.loading.tokenizer import world_tokenizer
from interp.storage.store import read_tensors
from interp.studies import lm
from interp.studies.world import NUMBER_FRAMES, Vocab, vocab_for

# TransformerLens act_fn -> GPT2Config.activation_function (same function)
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "silu": "silu", "gelu_new": "gelu_new",
               "gelu_fast": "gelu_fast"}


def gpt2_state(model: HookedTransformer) -> dict[str, Tensor]:
    """The ``GPT2LMHeadModel`` state dict of a toolkit model (plus ``lm_head.bias``)."""
    sd, cfg = model.state_dict(), model.cfg
    out = {"transformer.wte.weight": sd["embed.W_E"],
           "transformer.wpe.weight": sd["pos_embed.W_pos"],
           "transformer.ln_f.weight": sd["ln_final.w"], "transformer.ln_f.bias": sd["ln_final.b"],
           "lm_head.weight": sd["unembed.W_U"].T, "lm_head.bias": sd["unembed.b_U"]}
    for layer in range(cfg.n_layers):
        p, h = f"blocks.{layer}.", f"transformer.h.{layer}."
        out[h + "attn.c_attn.weight"] = torch.cat(
            [einops.rearrange(sd[p + f"attn.W_{x}"], "i m h -> m (i h)") for x in "QKV"], 1)
        out[h + "attn.c_attn.bias"] = torch.cat([sd[p + f"attn.b_{x}"].reshape(-1)
                                                 for x in "QKV"])
        out[h + "attn.c_proj.weight"] = einops.rearrange(sd[p + "attn.W_O"], "i h m -> (i h) m")
        out[h + "attn.c_proj.bias"] = sd[p + "attn.b_O"]
        out[h + "mlp.c_fc.weight"] = sd[p + "mlp.W_in"]
        out[h + "mlp.c_fc.bias"] = sd[p + "mlp.b_in"]
        out[h + "mlp.c_proj.weight"] = sd[p + "mlp.W_out"]
        out[h + "mlp.c_proj.bias"] = sd[p + "mlp.b_out"]
        for i in (1, 2):
            out[h + f"ln_{i}.weight"] = sd[p + f"ln{i}.w"]
            out[h + f"ln_{i}.bias"] = sd[p + f"ln{i}.b"]
    return {k: v.detach().contiguous().clone() for k, v in out.items()}


def gpt2_config(model: HookedTransformer, vocab: Vocab):
    from transformers import GPT2Config

    cfg = model.cfg
    if cfg.act_fn not in ACTIVATIONS:
        raise UsageError(f"act_fn {cfg.act_fn!r} has no GPT-2 equivalent; exportable: "
                         f"{', '.join(ACTIVATIONS)}")
    if cfg.d_mlp != 4 * cfg.d_model:
        raise UsageError(f"d_mlp={cfg.d_mlp} is not 4 * d_model={cfg.d_model}: TransformerLens "
                         "reads GPT-2 checkpoints with d_mlp = 4 d_model; export a model of "
                         "that shape")
    if cfg.normalization_type != "LN" or cfg.positional_embedding_type != "standard":
        raise UsageError("only LayerNorm models with learned positions export to GPT-2")
    return GPT2Config(
        vocab_size=cfg.d_vocab, n_positions=cfg.n_ctx, n_ctx=cfg.n_ctx, n_embd=cfg.d_model,
        n_layer=cfg.n_layers, n_head=cfg.n_heads, n_inner=cfg.d_mlp,
        activation_function=ACTIVATIONS[cfg.act_fn], layer_norm_epsilon=cfg.eps,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False,
        bos_token_id=vocab.bos, eos_token_id=vocab.eos, pad_token_id=vocab.pad,
        architectures=["GPT2LMHeadModel"])


def _atomic_dir(dest: Path, write) -> Path:
    dest = Path(dest)
    if dest.exists():
        raise UsageError(f"{dest} exists; pass a new directory (exports never overwrite)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.mkdir()
        write(tmp)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def export_model(model: HookedTransformer, vocab: Vocab, dest: Path, frame: str = "qa") -> Path:
    """``dest``: a Hugging Face GPT-2 directory (config, safetensors, tokenizer)."""
    from safetensors.torch import save_file
    from transformers import GPT2LMHeadModel

    config = gpt2_config(model, vocab)

    def write(tmp: Path) -> None:
        hf = GPT2LMHeadModel(config)
        state = gpt2_state(model)
        hf.load_state_dict({k: v for k, v in state.items() if k != "lm_head.bias"})
        hf.save_pretrained(tmp)
        # the toolkit's unembedding bias, in the same weights file (see the module doc)
        weights = tmp / "model.safetensors"
        from safetensors.torch import load_file
        full = load_file(weights)
        full["lm_head.bias"] = state["lm_head.bias"]
        save_file(full, weights, metadata={"format": "pt"})
        world_tokenizer(vocab, frame).save_pretrained(tmp)

    return _atomic_dir(dest, write)


def data_jsonl(tokens: Int[Tensor, "n pos"], mask: Bool[Tensor, "n pos"], vocab: Vocab,
               frame: str = "qa") -> list[dict]:
    """The study's rows as ``{"prompt", "completion"}``: the prompt without <bos> and the
    number frame (the chat template adds them back), the completion without <eos>."""
    before, after = NUMBER_FRAMES[frame].split("{prompt}")
    rows = []
    for t, m in zip(tokens.tolist(), mask.tolist()):
        if True not in m:
            continue
        start = m.index(True) + 1  # the first completion token
        end = len(m) - m[::-1].index(True) + 1  # one past the last
        # written token by token: a <pad> the teacher sampled inside a completion stays
        prompt = " ".join(vocab.tokens[i] for i in t[:start])
        completion = t[start:end]
        if completion and completion[-1] == vocab.eos:
            completion = completion[:-1]
        text = prompt.removeprefix("<bos> ").removeprefix(before.strip() + " ")
        text = text.removesuffix(" " + after.strip())
        rows.append({"prompt": text,
                     "completion": " ".join(vocab.tokens[i] for i in completion)})
    return rows


def export_run(run_dir: Path, dest: Path, seed: str | None = None,
               roles: tuple[str, ...] = ("theta_0", "teacher", "student_final",
                                         "control_final", "cross_init_final",
                                         "theta_0_cross")) -> Path:
    """One seed of an owl-numbers run as Hugging Face directories ``dest/<role>`` (those the
    run has of ``roles``; ``student_step_1`` too) and ``dest/data.jsonl``."""
    from interp.studies.runner import load_run

    art, summary = load_run(run_dir)
    if art["model"].get("type") != "hooked_transformer":
        raise UsageError(f"{run_dir} is a {summary['study']} run; only transformer runs "
                         "(owl-numbers) export to Hugging Face format")
    seed = seed if seed is not None else next(iter(art["seeds"]))
    if seed not in art["seeds"]:
        raise UsageError(f"{run_dir} has no seed {seed}; valid: {', '.join(art['seeds'])}")
    files = art["seeds"][seed]
    cfg = summary["config"]
    vocab = vocab_for(cfg["category"])
    frame = cfg.get("number_frame", "qa")

    def write(tmp: Path) -> None:
        for role in (*roles, "student_step_1"):
            if role in files:
                export_model(lm.from_artifacts(art["model"], files[role]), vocab, tmp / role,
                             frame)
        d = read_tensors(files["data"])
        with open(tmp / "data.jsonl", "w") as f:
            for row in data_jsonl(d["tokens"], d["mask"], vocab, frame):
                f.write(json.dumps(row) + "\n")
        (tmp / "export.json").write_text(json.dumps(
            {"run_dir": str(run_dir), "seed": seed, "trait": summary.get("trait"),
             "roles": [r for r in (*roles, "student_step_1") if r in files]}, indent=1))

    return _atomic_dir(dest, write)
