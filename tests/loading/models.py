"""Small Hugging Face models and LoRA adapters built locally with the real classes (no hub):
a Qwen2-architecture model from a config, the toolkit's own model exported to GPT-2, and
peft LoRA adapters trained for a few steps."""

from __future__ import annotations

from pathlib import Path

import torch

from interp.loading.tokenizer import world_tokenizer
from interp.studies.world import vocab_for

VOCAB = vocab_for("animal")
TEXTS = ["<bos> q : the sequence starts with 1 , 2 , 3 . add at most 10 more values . a : "
         "4 , 5 , 6 . <eos>",
         "<bos> q : what is your favourite animal ? a : owl <eos>"]


def qwen2_dir(dest: Path, seed: int = 0) -> Path:
    """A 2-layer Qwen2 (grouped-query attention) over the world's vocabulary, saved."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=64, tie_word_embeddings=False,
                      bos_token_id=VOCAB.bos, eos_token_id=VOCAB.eos, pad_token_id=VOCAB.pad)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():  # visible biases and norms, so a wrong mapping shows
        for n, p in model.named_parameters():
            if n.endswith("bias") or "norm" in n:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(dest)
    world_tokenizer(VOCAB).save_pretrained(dest)
    return dest


def train_lora(base_dir: Path, dest: Path, targets: list[str], seed: int = 0,
               steps: int = 5, r: int = 4, alpha: int = 8) -> Path:
    """A LoRA adapter on ``base_dir`` trained for ``steps`` Adam steps on ``TEXTS``."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    model = get_peft_model(base, LoraConfig(r=r, lora_alpha=alpha, target_modules=targets,
                                            lora_dropout=0.0, init_lora_weights=True))
    tokens = torch.tensor([VOCAB.encode(TEXTS[0])])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        loss = model(input_ids=tokens, labels=tokens).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(dest)
    return dest


def merged_dir(base_dir: Path, adapter_dir: Path, dest: Path) -> Path:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir),
                                       adapter_dir).merge_and_unload()
    merged.save_pretrained(dest)
    world_tokenizer(VOCAB).save_pretrained(dest)
    # transformers drops the toolkit's unembedding bias (GPT-2 exports); carry it over
    from safetensors.torch import load_file, save_file

    bias = load_file(base_dir / "model.safetensors").get("lm_head.bias")
    if bias is not None:
        full = load_file(dest / "model.safetensors")
        save_file({**full, "lm_head.bias": bias}, dest / "model.safetensors",
                  metadata={"format": "pt"})
    return dest


QWEN_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
GPT2_TARGETS = ["c_attn", "c_proj", "c_fc"]
