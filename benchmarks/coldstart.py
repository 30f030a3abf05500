"""Cold start: `make demo` on an empty cache, by stage, and the warm rerun.

    python -m benchmarks.coldstart [--keep DIR]   (or COLDSTART_KEEP=DIR python -m benchmarks ...)

1. Run what `make demo` runs (``python -m interp.demo``: ``interp.align`` then
   ``interp.fingerprint`` in one interpreter, ``INTERP_WORKERS=3`` unless set, as the
   Makefile) in a scratch directory with an empty cache (INTERP_CACHE), and time it: the
   cold demo. Run it again: the warm demo (every stage a cache hit). Time
   ``python -c "import interp.demo, interp.align, interp.fingerprint"``: the start-up.
2. Read the cache's manifests: each entry records ``build_seconds``, the time its build took
   without the entries it built or read on the way (``Store.get_or_build``). Sum them by
   stage (``STAGES``, by entry kind); what no entry accounts for (imports, loading,
   reports) is "other". With worker processes the stages overlap: a stage's seconds are
   summed over processes, so the shares can add up to more than 1 and "other" (the wall
   time left over, at least 0) understates what the main process spent outside builds.
3. Where a stage is model training, its achieved FLOP/s: pretraining counts
   6 N + 6 d_model d_vocab per non-pad token (``benchmarks.pretrain.flops_per_token``; the
   base entries record their tokens), against the float32 matmul peak measured beside it.

One cold run takes minutes, so every row of this set shares one measurement (one
repetition, whatever ``--reps`` says). Needs a quiet machine: a second job on two cores
slows torch many times over.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Context, Measured, Row, torch_threads

# entry kind -> stage (the stages, in pipeline order)
STAGES = {
    "owl-numbers/base": "pretraining",
    "owl-numbers/teacher": "teachers",
    "owl-numbers/data": "data generation",
    "owl-numbers/student": "students", "owl-numbers/control_other": "students",
    "owl-numbers/control_base": "students", "owl-numbers/cross_init": "students",
    "owl-numbers/shuffled": "students",
    "owl-numbers/eval": "evaluation", "owl-numbers/signal": "evaluation",
    "align/seed": "align",
    "sae": "SAE training",
    "activations": "fingerprint",
}
ORDER = ["pretraining", "teachers", "data generation", "students", "evaluation", "align",
         "SAE training", "fingerprint", "other"]
SLUG = {"data generation": "data", "SAE training": "sae"}  # row names without spaces
BUDGET_S = 300.0  # the cold-start budget: five minutes
WARM_BUDGET_S = 10.0  # warm: at most this plus interpreter start-up

_RESULT: dict | None = None  # the one measurement every row of the set reads


def _run(args: list[str], cwd: Path, env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): "
                           f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return time.perf_counter() - t0


def demo_seconds(cwd: Path, env: dict) -> float:
    return _run(["-m", "interp.demo"], cwd, env)


def stage_seconds(cache: Path) -> tuple[dict[str, float], dict[str, int]]:
    """(seconds by stage, entries by stage) from the cache's manifests."""
    secs: dict[str, float] = collections.defaultdict(float)
    count: dict[str, int] = collections.defaultdict(int)
    for f in cache.rglob("manifest.json"):
        m = json.loads(f.read_text())
        stage = STAGES.get(m["kind"], STAGES.get(m["kind"].split("/")[0], "other"))
        secs[stage] += m.get("build_seconds", 0.0)
        count[stage] += 1
    return dict(secs), dict(count)


def pretrain_flops(cache: Path) -> float:
    """FLOPs the base entries' pretraining did (useful work: non-pad tokens)."""
    import torch  # noqa: F401  (the model below)

    from benchmarks.pretrain import flops_per_token
    from interp.studies import lm

    total = 0.0
    for f in (cache / "owl-numbers" / "base").glob("*/manifest.json"):
        m = json.loads(f.read_text())
        c = m["config"]["model"]
        model = lm.build_model(lm.ModelConfig(**c), m["meta"]["d_vocab"], 64, 0)
        total += flops_per_token(model) * m["meta"]["tokens"]
    return total


def measure(keep: Path | None = None) -> dict:
    global _RESULT
    if _RESULT is not None:
        return _RESULT
    from benchmarks.pretrain import peak_flops

    keep = keep or (Path(os.environ["COLDSTART_KEEP"]) if os.environ.get("COLDSTART_KEEP")
                    else None)  # where `python -m benchmarks` should leave the run
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        work = keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cache = work / "cache"
        env = {**os.environ, "INTERP_CACHE": str(cache), "TQDM_DISABLE": "1",
               "WANDB_MODE": "disabled", "INTERP_WORKERS": os.environ.get("INTERP_WORKERS", "3")}
        start = min(_run(["-c", "import interp.demo, interp.align, interp.fingerprint"], work, env)
                    for _ in range(3))
        cold = demo_seconds(work, env)
        warm = demo_seconds(work, env)
        secs, count = stage_seconds(cache)
        secs["other"] = secs.get("other", 0.0) + max(0.0, cold - sum(secs.values()))
        _RESULT = {"cold": cold, "warm": warm, "start": start, "stages": secs,
                   "entries": count, "pretrain_flops": pretrain_flops(cache),
                   "peak": peak_flops(), "threads": _threads(env)}
        _RESULT["peak_demo"] = _peak_at(_RESULT["threads"], peak_flops)
        import torch

        _RESULT["peak_threads"] = torch.get_num_threads()
    return _RESULT


def _peak_at(n_threads: int, peak_flops) -> float:
    """The matmul peak at the demo's thread count (each worker's own ceiling)."""
    with torch_threads(n_threads):
        return peak_flops()


def _threads(env: dict) -> int:
    out = subprocess.run([sys.executable, "-c", "import interp, torch; "
                          "print(torch.get_num_threads())"], env=env, capture_output=True,
                         text=True).stdout.strip()
    return int(out or 0)


def _cold(ctx: Context) -> Measured:
    r = measure()
    return Measured([BUDGET_S], [r["cold"]], "s",
                    note="`make demo` (python -m interp.demo: interp.align then "
                         "interp.fingerprint) in a scratch directory with an empty "
                         f"INTERP_CACHE, {r['threads']} torch threads, one run (minutes); "
                         "baseline = the five-minute budget. Stages: the `stage:` rows.")


def _warm(ctx: Context) -> Measured:
    r = measure()
    return Measured([r["start"]], [r["warm"]], "s", difference=True,
                 note="the same command again, every stage a cache hit; baseline = one "
                      "interpreter start-up importing interp.demo, interp.align and "
                      "interp.fingerprint (best of 3); ratio = warm minus the start-up, in "
                      "seconds")


def _stage(name: str):
    def run(ctx: Context) -> Measured:
        r = measure()
        s = r["stages"].get(name, 0.0)
        extra = ""
        note = f"{r['entries'].get(name, 0)} store entries; ratio = share of the cold demo"
        if name == "pretraining" and s > 0:
            # s sums the worker processes' seconds: achieved is one process's rate, at
            # the demo's thread count, so it is compared with the peak at that count
            achieved = r["pretrain_flops"] / s
            extra = (f"{achieved / 1e9:.1f} GFLOP/s per {r['threads']}-thread process = "
                     f"{achieved / r['peak_demo']:.0%} of the {r['peak_demo'] / 1e9:.0f} "
                     f"GFLOP/s float32 matmul peak at {r['threads']} thread(s) "
                     f"({r['peak'] / 1e9:.0f} GFLOP/s at {r['peak_threads']})")
            note += "; FLOPs = (6 N + 6 d_model d_vocab) per non-pad token trained"
        return Measured([r["cold"]], [s], "s", extra=extra, note=note)
    return run


ROWS = [Row("cold_demo", "cold `make demo` (empty cache) vs the five-minute budget",
            "cold / budget", ("<=", 1.0), _cold),
        Row("warm_demo", "warm `make demo` (all cache hits) vs interpreter start-up",
            "warm - start-up (s)", ("<=", WARM_BUDGET_S), _warm)] + [
        Row(f"stage:{SLUG.get(s, s)}", f"cold demo stage: {s} (process seconds)",
            "share of cold", None, _stage(s))
        for s in ORDER]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.coldstart")
    p.add_argument("--keep", type=Path, default=None,
                   help="work (and leave the cache) in this directory instead of a temp one")
    args = p.parse_args()
    from benchmarks.table import table

    measure(args.keep)
    print(table([(row, row.run(Context(1, False, Path(".")))) for row in ROWS]))


if __name__ == "__main__":
    main()
