"""Prompt/completion JSONL: the toolkit's number data exported and read back through the
world tokenizer's chat template is the study's rows, token for token; bad rows are one-line
errors naming the line."""

from __future__ import annotations

import pytest
import torch

from interp.errors import UsageError
from interp.loading.export import data_jsonl
from interp.loading.jsonl import read_data
from interp.loading.tokenizer import world_tokenizer
from interp.storage.store import read_tensors
from tests.loading.models import VOCAB


def test_exported_rows_tokenize_back_to_the_studys_rows(owl_run, tmp_path):
    import json

    from interp.studies.runner import load_run

    run_dir, _ = owl_run
    art, _ = load_run(run_dir)
    d = read_tensors(art["seeds"]["0"]["data"])
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in data_jsonl(d["tokens"], d["mask"],
                                                                        VOCAB)))
    back = read_data(path, world_tokenizer(VOCAB), n_ctx=d["tokens"].shape[1])
    w = back.tokens.shape[1]
    assert torch.equal(back.tokens, d["tokens"][:, :w])
    assert torch.equal(back.mask, d["mask"][:, :w])
    assert not d["mask"][:, w:].any() and (d["tokens"][:, w:] == VOCAB.pad).all()


@pytest.mark.parametrize("text, want", [
    ('{"prompt": "the sequence starts with 1 ."}\n', r"line 1 lacks .*'completion'"),
    ('\n{"prompt": "zebra", "completion": "1 , 2"}\n', r"line 2 does not tokenize"),
    ('{"prompt": 1, "completion": "1"}\n', r"line 1 lacks .*'prompt'"),
    ("[1, 2]\n", r"line 1 is a JSON list"),
    ("{oops\n", r"line 1 is not JSON"),
    ("", r"has no rows"),
])
def test_bad_rows_are_one_line_errors(tmp_path, text, want):
    path = tmp_path / "d.jsonl"
    path.write_text(text)
    with pytest.raises(UsageError, match=want) as e:
        read_data(path, world_tokenizer(VOCAB), n_ctx=64)
    assert "\n" not in str(e.value)


def test_missing_file_and_device_errors(tmp_path):
    from interp.loading.sources import pick_device

    with pytest.raises(UsageError, match="does not exist"):
        read_data(tmp_path / "nope.jsonl", world_tokenizer(VOCAB), 64)
    assert pick_device("auto") in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            pick_device("cuda")
    with pytest.raises(UsageError, match="valid: auto"):
        pick_device("tpu")


def test_memory_plan_counts_parameters_exactly():
    """The plan's meta-device count equals a real tiny model's parameter count."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from interp.loading.memory import Workload, param_counts, plan

    cfg = {"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "vocab_size": 100, "tie_word_embeddings": False}
    real = Qwen2ForCausalLM(Qwen2Config(**{k: v for k, v in cfg.items() if k != "model_type"}))
    total, adapted, _ = param_counts(cfg)
    assert total == sum(p.numel() for p in real.parameters())
    assert adapted == sum(p.numel() for n, p in real.named_parameters()
                          if n.endswith("proj.weight"))
    p = plan(cfg, Workload(dtype="float32"))
    assert p["load: base weights (device)"] == 4 * total
