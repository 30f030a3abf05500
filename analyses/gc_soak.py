"""gc in a loop during a whole study: the study must finish with every artifact it names
present and verified.

    python analyses/gc_soak.py [--preset tiny|default] [--seeds N] [--cache DIR] [--every 1]

Starts ``python -m interp.study run owl-numbers`` (the default study with ``--preset
default``) in a fresh cache (``--cache``, default a new temp dir: gc with ``--grace 0``
on a shared cache would remove other people's unreferenced entries) and runs
``python -m interp.cache gc --grace 0`` every ``--every`` seconds until it ends. An
unreferenced entry is planted first so that each gc has something to remove. Then every
artifact in the run's artifacts.json is read back through the store (size and sha256
checked) and the result is printed (and written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from interp.storage.store import Store  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=("tiny", "default"), default="tiny")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--cache", default=None)
    p.add_argument("--every", type=float, default=1.0)
    p.add_argument("--out", default=None, help="also write the result here (markdown)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gc-soak-"))
    cache = Path(args.cache) if args.cache else work / "cache"
    run = work / "run"
    env = {**os.environ, "INTERP_CACHE": str(cache), "PYTHONPATH": str(ROOT),
           "TQDM_DISABLE": "1"}
    import torch

    orphan = Store(cache).put("soak-orphan", {"t": time.time()}, {"t": {"x": torch.ones(3)}})
    cmd = [sys.executable, "-m", "interp.study", "run", "owl-numbers", "--out", str(run)]
    cmd += ["--preset", "tiny"] if args.preset == "tiny" else []
    cmd += ["--seeds", str(args.seeds)] if args.seeds else []
    t0 = time.time()
    study = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=open(work / "study.log", "w"))
    n_gc, failed, removed = 0, 0, 0
    while study.poll() is None:
        g = subprocess.run([sys.executable, "-m", "interp.cache", "gc", "--grace", "0"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        n_gc += 1
        failed += g.returncode != 0
        removed += g.stdout.count("removed ")
        time.sleep(args.every)
    seconds = time.time() - t0
    verified, problems = 0, []
    if study.returncode == 0:
        art = json.loads((run / "artifacts.json").read_text())
        store = Store(cache)
        for roles in art["seeds"].values():
            for path in roles.values():
                try:
                    store.read(path)
                    verified += 1
                except Exception as e:  # noqa: BLE001 - reported
                    problems.append(f"{path}: {e}")
    ok = study.returncode == 0 and not problems and failed == 0
    text = (f"gc soak, owl-numbers preset {args.preset}: study exit {study.returncode} after "
            f"{seconds:.0f} s; {n_gc} gc runs every {args.every:g} s ({failed} failed, "
            f"{removed} entries removed, planted orphan removed: {not orphan.path.exists()}); "
            f"{verified} artifacts named in artifacts.json present and verified, "
            f"{len(problems)} problems{': ' + '; '.join(problems[:5]) if problems else ''}. "
            f"{'PASS' if ok else 'FAIL'} (work dir {work})")
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
