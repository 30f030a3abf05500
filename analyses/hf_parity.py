"""Parity of the external path with the native one: a toolkit run exported to Hugging Face
format (``interp.loading.export``) and analysed with ``--base/--teacher/--student ...``
gives the native report's numbers.

    python analyses/hf_parity.py RUN_DIR [--seed 0] [--work DIR] [--fingerprint]
        [--out runs/hf_parity.md]

1. ``python -m interp.align RUN_DIR`` (native; from the cache when run before).
2. Export seed ``--seed``'s roles and its number data (JSONL) to ``WORK/export``.
3. ``python -m interp.align --base ... --data WORK/export/data.jsonl --out WORK/external``.
4. Compare the first step's inner product and cosine, every component's, and the sign
   checks (same-init and cross-init): the largest relative difference per quantity.
5. With ``--fingerprint``: ``python -m interp.fingerprint RUN_DIR`` (its SAEs saved in
   sae-lens's layout under RUN_DIR/saes), then the external fingerprint with ``--sae
   RUN_DIR/saes``, and the top shared features on the number data compared per hook.
Writes a markdown table (``--out``) and prints it, with each command's peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str]) -> tuple[float, float]:
    """Run a CLI; (seconds, peak resident memory of the child in GiB)."""
    t = time.time()
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return time.time() - t, peak


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), 1e-30)


def compare_align(native: dict, ext: dict) -> list[tuple[str, float, float, float]]:
    rows = []
    for f in ("inner_product", "cosine"):
        rows.append((f"first_step.{f}", native["first_step"][f], ext["first_step"][f],
                     rel(native["first_step"][f], ext["first_step"][f])))
    for c, v in native["components"].items():
        for f in ("inner_product", "cosine"):
            rows.append((f"components.{c}.{f}", v[f], ext["components"][c][f],
                         rel(v[f], ext["components"][c][f])))
    for k in ("gradient_step", "cross_init"):
        if k in native and k in ext:
            for f in ("inner_product", "cosine", "gauss_newton"):
                rows.append((f"{k}.{f}", native[k][f], ext[k][f], rel(native[k][f], ext[k][f])))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--seed", default="0")
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--fingerprint", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "hf_parity.md")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from interp.loading.export import export_run

    work = args.work or Path(tempfile.mkdtemp(prefix="hf-parity-"))
    py = [sys.executable, "-m"]
    times = {"native align": run(py + ["interp.align", str(args.run_dir)])}
    exp = export_run(args.run_dir, work / "export", args.seed)
    roles = json.loads((exp / "export.json").read_text())["roles"]
    flags = ["--base", str(exp / "theta_0"), "--teacher", str(exp / "teacher"),
             "--student", str(exp / "student_final"), "--data", str(exp / "data.jsonl"),
             "--device", "cpu"]
    for flag, role in (("--student-step-1", "student_step_1"), ("--control", "control_final"),
                       ("--cross-init", "theta_0_cross")):
        if role in roles:
            flags += [flag, str(exp / role)]
    times["external align"] = run(py + ["interp.align", *flags, "--out", str(work / "ext")])
    native = json.loads((args.run_dir / "align.json").read_text())["seeds"][args.seed]
    ext = json.loads((work / "ext" / "align.json").read_text())["seeds"]["0"]
    rows = compare_align(native, ext)
    lines = [f"# External-path parity on {args.run_dir} (seed {args.seed})", "",
             f"`python analyses/hf_parity.py {args.run_dir} --seed {args.seed}"
             f"{' --fingerprint' if args.fingerprint else ''}`", "",
             "| quantity | native | external (HF export) | relative difference |",
             "|---|---|---|---|"]
    lines += [f"| {n} | {a:.9g} | {b:.9g} | {r:.2e} |" for n, a, b, r in rows]
    worst = max(r for *_, r in rows)
    lines += ["", f"largest relative difference: {worst:.2e} (criterion 1e-4: "
              f"{'met' if worst <= 1e-4 else 'NOT met'})"]
    if args.fingerprint:
        times["native fingerprint"] = run(py + ["interp.fingerprint", str(args.run_dir)])
        ext_flags = [f for f in flags]
        i = ext_flags.index("--student-step-1") if "--student-step-1" in ext_flags else None
        if i is not None:
            del ext_flags[i:i + 2]
        i = ext_flags.index("--cross-init") if "--cross-init" in ext_flags else None
        if i is not None:
            del ext_flags[i:i + 2]
        times["external fingerprint"] = run(py + [
            "interp.fingerprint", *ext_flags, "--sae", str(args.run_dir / "saes"),
            "--out", str(work / "ext")])
        nf = json.loads((args.run_dir / "fingerprint.json").read_text())["per_seed"][args.seed]
        ef = json.loads((work / "ext" / "fingerprint.json").read_text())
        lines += ["", "## Top fingerprint features on the number data (same SAEs)", "",
                  "| hook | native top | external top | same | correlation native | "
                  "external |", "|---|---|---|---|---|---|"]
        for h, v in nf["hooks"].items():
            e = ef["hooks"][h]["numbers"]
            lines.append(f"| {h} | {v['numbers']['top']} | {e['top']} | "
                         f"{'yes' if v['numbers']['top'] == e['top'] else 'NO'} | "
                         f"{v['numbers']['correlation']:.6f} | {e['correlation']:.6f} |")
    lines += ["", "| command | seconds | peak RSS of the commands so far (GiB) |", "|---|---|---|"]
    lines += [f"| {k} | {t:.0f} | {m:.2f} |" for k, (t, m) in times.items()]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
