"""Base pretraining throughput while another CPU-bound process runs, against solo.

    python -m benchmarks.contention [--reps 5] [--steps 20]

Each measurement is a fresh process (``python -m benchmarks.contention --worker``) that
starts as every ``python -m interp.*`` command does (``interp/__init__.py``: torch threads
from ``INTERP_THREADS`` or the cores available, idle OpenMP threads sleeping), pretrains the
default owl-numbers model on batches of 64 and prints tokens/s. Solo: nothing else of ours
runs; contended: a ``python -c 'while True: pass'`` process runs for the whole measurement.
The note adds one contended measurement as the toolkit ran before (torch imported before
interp, so OpenMP keeps its default spin-waiting), for comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Context, Measured, Row, paired

ROOT = Path(__file__).resolve().parent.parent
BUSY = [sys.executable, "-c", "while True: pass"]


def worker(steps: int) -> None:
    """Pretraining tokens/s in this process, as JSON on stdout."""
    import numpy as np
    import torch

    from interp.studies import lm
    from interp.studies.world import Vocab, WorldConfig, corpus_batch

    vocab = Vocab()
    model = lm.build_model(lm.ModelConfig(), len(vocab), 64, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    rng = np.random.default_rng(0)
    batches = [corpus_batch(vocab, WorldConfig(), rng, 64) for _ in range(steps)]

    def train(bs: list) -> None:
        for tokens in bs:
            loss = lm.next_token_loss(model(tokens), tokens, tokens != vocab.pad)
            opt.zero_grad()
            loss.backward()
            opt.step()

    train(batches[:2])  # warm-up
    t0 = time.perf_counter()
    train(batches)
    secs = time.perf_counter() - t0
    n = sum(int((b != vocab.pad).sum()) for b in batches)
    print(json.dumps({"tok_s": n / secs, "s_per_step": secs / steps,
                      "threads": torch.get_num_threads()}))


def measure_once(steps: int, busy: bool, legacy: bool = False) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.contention", "--worker", "--steps", str(steps)]
    env = dict(os.environ)
    if legacy:
        # torch (and OpenMP) start before interp can set the wait policy, and without the
        # policy this process's interp put into the environment: OpenMP's default
        env.pop("OMP_WAIT_POLICY", None)
        cmd = [sys.executable, "-c", "import torch; from benchmarks.contention import worker; "
               f"worker({steps})"]
    hog = subprocess.Popen(BUSY) if busy else None
    try:
        out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True,
                             env=env).stdout
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return json.loads(out.strip().splitlines()[-1])


def measure(reps: int, steps: int = 20) -> Measured:
    info: list[dict] = []

    def run(busy: bool) -> float:
        info.append(measure_once(steps, busy))
        return info[-1]["tok_s"]

    solo, busy = paired(reps, "contention", lambda: run(False), lambda: run(True))
    legacy = measure_once(steps, True, legacy=True)
    return Measured(
        solo, busy, "tok/s", extra=f"{info[-1]['s_per_step']:.3f} s/step contended",
        note=f"default owl-numbers model, batch 64, {steps} steps per measurement, each in a "
             f"fresh process with {info[-1]['threads']} torch threads (the toolkit's "
             "process-start settings); contended = while one `python -c 'while True: pass'` "
             "runs. As before this change (OpenMP's default spin-waiting), contended, measured "
             f"once: {legacy['tok_s']:,.0f} tok/s, {legacy['s_per_step']:.3f} s/step, "
             f"{legacy['tok_s'] / sorted(solo)[len(solo) // 2]:.3f} of the solo median.")


def run(ctx: Context) -> Measured:
    return measure(ctx.reps, steps=5 if ctx.quick else 20)


ROW = Row("contention", "base pretraining tokens/s with another CPU-bound process running "
          "vs solo", "contended / solo", (">=", 0.4), run)


def main() -> None:
    if "--worker" in sys.argv:
        import argparse

        p = argparse.ArgumentParser()
        p.add_argument("--worker", action="store_true")
        p.add_argument("--steps", type=int, default=20)
        a = p.parse_args()
        worker(a.steps)
        return
    from benchmarks.table import standalone

    standalone(ROW, measure, steps=20)


if __name__ == "__main__":
    main()
