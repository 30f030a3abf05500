"""The memory plan of a report on your own models, per stage, for Qwen2.5-7B, Qwen2.5-1.5B
and Llama-3.2-1B (``interp.loading.memory``): writes ``runs/memory_plan.md``.

    python analyses/memory_plan.py [--dtype bfloat16] [--adapters 3] [--seq 128]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from interp.loading.memory import MODELS, Workload, plan

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--adapters", type=int, default=3)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "memory_plan.md")
    a = p.parse_args()
    w = Workload(dtype=a.dtype, adapters=a.adapters, seq=a.seq)
    plans = {m: plan(cfg, w) for m, cfg in MODELS.items()}
    stages = list(next(iter(plans.values())))
    lines = [f"# Memory plan ({w.dtype}, {w.adapters} rank-{w.lora_r} LoRA adapters on every "
             f"projection, {w.rows} data rows of {w.seq} tokens, {w.probe_rows} probe rows "
             f"in chunks of {w.chunk})", "",
             f"`python analyses/memory_plan.py --dtype {a.dtype} --adapters {a.adapters} "
             f"--seq {a.seq}`", "", "| stage | " + " | ".join(plans) + " |",
             "|---|" + "---|" * len(plans)]
    for s in stages:
        if "parameters" in s:
            cells = [f"{plans[m][s] / 1e9:.3f} B" for m in plans]
        else:
            cells = [f"{plans[m][s] / 2**30:.1f} GiB" for m in plans]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
