"""Peak memory of the align report on LoRA adapters, measured, against the memory plan.

    python analyses/adapter_memory.py [--hidden 768] [--layers 12] [--out runs/adapter_memory.md]

1. Builds a Qwen2-architecture model of the given size from a config (random weights, the
   world's vocabulary and tokenizer; no download) and three rank-16 LoRA adapters on every
   projection (teacher, student, control; peft, random factors), saved.
2. Runs ``python -m interp.align --base ... --teacher ... --student ... --control ...`` on
   the exported tiny owl data in a child process and reads its peak resident memory.
3. Prints the measured peak beside the plan (``interp.loading.memory``) for the same config
   and workload, the base's weight bytes, and what merging every adapter into its own copy
   would hold (four full models).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--data", type=Path, required=True, help="a JSONL file (e.g. an export's)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "adapter_memory.md")
    a = p.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from interp.loading.memory import Workload, plan
    from interp.loading.tokenizer import world_tokenizer
    from interp.studies.world import vocab_for

    vocab = vocab_for("animal")
    cfg = {"model_type": "qwen2", "hidden_size": a.hidden, "intermediate_size": 4 * a.hidden,
           "num_hidden_layers": a.layers, "num_attention_heads": a.hidden // 64,
           "num_key_value_heads": max(1, a.hidden // 256), "vocab_size": len(vocab),
           "tie_word_embeddings": False}
    work = Path(tempfile.mkdtemp(prefix="adapter-memory-"))
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**{k: v for k, v in cfg.items() if k != "model_type"},
                                         max_position_embeddings=64))
    model.save_pretrained(work / "base")
    world_tokenizer(vocab).save_pretrained(work / "base")
    n_params = sum(p.numel() for p in model.parameters())
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    for i, role in enumerate(("teacher", "student", "control")):
        torch.manual_seed(i + 1)
        peft_model = get_peft_model(Qwen2ForCausalLM.from_pretrained(work / "base"), LoraConfig(
            r=16, lora_alpha=32, target_modules=targets, init_lora_weights=False))
        peft_model.save_pretrained(work / role)
    del model, peft_model
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # the libraries alone: a child that imports what the report imports, then exits
    subprocess.run([sys.executable, "-c", "import interp.align, interp.analysis.external, "
                    "interp.loading.sources, transformers, peft"], check=True, cwd=ROOT, env=env)
    baseline = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    cmd = [sys.executable, "-m", "interp.align", "--base", str(work / "base"),
           "--teacher", str(work / "teacher"), "--student", str(work / "student"),
           "--control", str(work / "control"), "--data", str(a.data), "--device", "cpu",
           "--out", str(work / "report")]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    rows = json.loads((work / "report" / "align.json").read_text())["data"]["rows"]
    pl = plan(cfg, Workload(dtype="float32", adapters=3, lora_r=16, rows=min(rows, 256),
                            seq=64))
    gib = 2 ** 30
    lines = [f"# Peak memory of the align report on three LoRA adapters ({n_params / 1e6:.0f}M "
             "parameters, float32, CPU)", "",
             f"`python analyses/adapter_memory.py --hidden {a.hidden} --layers {a.layers} "
             f"--data DATA.jsonl`", "",
             "| quantity | GiB |", "|---|---|",
             f"| base weights | {4 * n_params / gib:.3f} |",
             f"| merged copies (base + 3 adapters merged, weights only) "
             f"| {16 * n_params / gib:.3f} |",
             f"| plan: peak working set (base + largest stage, device) "
             f"| {pl['peak on the device'] / gib:.3f} |",
             f"| plan: loading (the Hugging Face copy beside TransformerLens's) "
             f"| {pl['load: transient host copy'] / gib:.3f} |",
             f"| plan: LoRA factors (3 adapters) "
             f"| {pl['adapters: LoRA factors (host)'] / gib:.3f} |",
             f"| measured: peak resident memory of the libraries alone | {baseline / gib:.3f} |",
             f"| measured: peak resident memory of the report process | {peak / gib:.3f} |",
             f"| measured: report minus libraries | {(peak - baseline) / gib:.3f} |"]
    text = "\n".join(lines) + "\n"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
