"""Loading Hugging Face models, exports of the toolkit's models and LoRA adapters into
TransformerLens, with no hub: every model is built here with the real classes."""

from __future__ import annotations

import json

import pytest
import torch

from interp.errors import UsageError
from interp.loading.export import export_model
from interp.loading.sources import adapter_delta, load_model
from interp.studies import lm
from tests.loading.models import (
    GPT2_TARGETS,
    QWEN_TARGETS,
    TEXTS,
    VOCAB,
    merged_dir,
    qwen2_dir,
    train_lora,
)


@pytest.fixture(scope="module")
def toolkit_model():
    model = lm.build_model(lm.ModelConfig(n_layers=2, d_model=32, n_heads=2, d_mlp=128),
                           len(VOCAB), 64, 0)
    with torch.no_grad():  # every weight away from its init, the unembedding bias too
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, toolkit_model):
    root = tmp_path_factory.mktemp("hf")
    qwen = qwen2_dir(root / "qwen")
    gpt2 = export_model(toolkit_model, VOCAB, root / "gpt2")
    out = {"root": root, "qwen": qwen, "gpt2": gpt2,
           "qwen_lora": train_lora(qwen, root / "qwen_lora", QWEN_TARGETS),
           "gpt2_lora": train_lora(gpt2, root / "gpt2_lora", GPT2_TARGETS)}
    out["qwen_merged"] = merged_dir(qwen, out["qwen_lora"], root / "qwen_merged")
    return out


def tokens():
    return torch.tensor([VOCAB.encode(TEXTS[0])])


def test_exported_toolkit_model_reads_back_identically(dirs, toolkit_model):
    loaded = load_model(str(dirs["gpt2"]))
    assert set(dict(loaded.model.named_parameters())) == \
        set(dict(toolkit_model.named_parameters()))
    for k, v in toolkit_model.state_dict().items():
        if k in dict(loaded.model.named_parameters()):
            torch.testing.assert_close(loaded.model.state_dict()[k], v, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(tokens()), toolkit_model(tokens()),
                                   rtol=0, atol=1e-5)


def test_export_matches_transformers_forward(dirs, toolkit_model):
    """The directory is a real GPT-2 checkpoint: transformers' own forward (plus the
    toolkit's unembedding bias, which GPT-2 has no slot for) gives the toolkit's logits."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(dirs["gpt2"])
    bias = load_file(dirs["gpt2"] / "model.safetensors")["lm_head.bias"]
    with torch.no_grad():
        torch.testing.assert_close(hf(tokens()).logits + bias, toolkit_model(tokens()),
                                   rtol=0, atol=1e-5)


def test_qwen2_directory_has_transformerlens_hooks_and_logits(dirs):
    from transformers import AutoModelForCausalLM

    loaded = load_model(str(dirs["qwen"]))
    _, cache = loaded.model.run_with_cache(tokens(), names_filter=lambda n: "resid_post" in n)
    assert sorted(cache.keys()) == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    hf = AutoModelForCausalLM.from_pretrained(dirs["qwen"])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(tokens()), hf(tokens()).logits,
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ["qwen", "gpt2"])
def test_adapter_delta_equals_merged_minus_base(dirs, arch, tmp_path):
    base = load_model(str(dirs[arch]))
    adapter = load_model(str(dirs[f"{arch}_lora"]), base=base)
    merged_path = dirs["qwen_merged"] if arch == "qwen" else \
        merged_dir(dirs["gpt2"], dirs["gpt2_lora"], tmp_path / "m")
    merged = load_model(str(merged_path))
    want = {k: v.detach() - dict(base.model.named_parameters())[k].detach()
            for k, v in merged.model.named_parameters()}
    changed = {k for k, v in want.items() if v.abs().max() > 0}
    assert changed == set(adapter.delta), "the adapter covers exactly what merging changes"
    for k, d in adapter.delta.items():
        rel = (d - want[k]).norm() / want[k].norm()
        assert rel < 1e-5, (k, float(rel))


def test_adapter_weights_apply_and_restore_the_shared_base(dirs):
    base = load_model(str(dirs["qwen"]))
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    adapter = load_model(str(dirs["qwen_lora"]), base=base)
    merged = load_model(str(dirs["qwen_merged"]))
    with torch.no_grad(), adapter.weights() as m:
        torch.testing.assert_close(m(tokens()), merged.model(tokens()), rtol=1e-5, atol=1e-5)
    for k, v in base.model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} not restored bit for bit"


def test_bad_models_are_one_line_errors(dirs, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_model(str(tmp_path / "nowhere"))
    with pytest.raises(UsageError, match="not in the local Hugging Face cache"):
        load_model("hf:nobody-here/no-such-model")
    gpt2 = load_model(str(dirs["gpt2"]))
    with pytest.raises(UsageError, match="does not match the base"):
        adapter_delta(dirs["qwen_lora"], gpt2.model)
    odd = tmp_path / "odd"
    odd.mkdir()
    cfg = json.loads((dirs["qwen"] / "config.json").read_text())
    cfg.update(architectures=["GPTBigCodeForCausalLM"], model_type="gpt_bigcode")
    (odd / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UsageError, match="not supported by TransformerLens; supported:.*Qwen2"):
        load_model(str(odd))
    with pytest.raises(UsageError, match="neither a Hugging Face model directory"):
        load_model(str(tmp_path))
