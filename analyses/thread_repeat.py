"""Do repeated runs give bit-identical weights, per torch thread count and OpenMP wait policy?

    python analyses/thread_repeat.py [--reps 4] [--threads 1,2] [--out runs/thread_repeat.md]

Each repetition is a fresh process (``INTERP_THREADS``, ``OMP_WAIT_POLICY`` set before torch
starts) that trains a small transformer for 4 AdamW steps from seed 0 and hashes its
weights; the table counts the distinct hashes. Run it on a busy machine too: whether
threads are descheduled mid-region is what varies.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = """
import hashlib, interp, numpy as np, torch
from interp.studies import lm
from interp.studies.world import Vocab, WorldConfig, corpus_batch
v = Vocab(); m = lm.build_model(lm.ModelConfig(d_model=64, d_mlp=256), len(v), 64, 0)
opt = torch.optim.AdamW(m.parameters(), lr=3e-3); rng = np.random.default_rng(0)
for _ in range(4):
    t = corpus_batch(v, WorldConfig(), rng, 32)
    loss = lm.next_token_loss(m(t), t, t != v.pad); opt.zero_grad(); loss.backward(); opt.step()
h = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in m.parameters()))
print(torch.get_num_threads(), h.hexdigest())
"""


def weights_hash(threads: int, policy: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",
                                                             "MKL_NUM_THREADS")}
    env.update(INTERP_THREADS=str(threads), OMP_WAIT_POLICY=policy, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", TRAIN], env=env, capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout.split()
    assert out[0] == str(threads), out
    return out[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=4)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--out", default="runs/thread_repeat.md")
    args = p.parse_args()
    load = os.getloadavg()[0]
    lines = [f"Load average at start: {load:.2f} on {len(os.sched_getaffinity(0))} cores.", "",
             "| threads | OMP_WAIT_POLICY | runs | distinct weight hashes |", "|---|---|---|---|"]
    for t in map(int, args.threads.split(",")):
        for policy in ("PASSIVE", "ACTIVE"):
            hashes = Counter(weights_hash(t, policy) for _ in range(args.reps))
            lines.append(f"| {t} | {policy} | {args.reps} | {len(hashes)} |")
            print(lines[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
