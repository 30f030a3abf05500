"""A study's science before and after a change, side by side (issue 17's check that the
speed-ups kept the results).

    python analyses/before_after.py BEFORE_RUN AFTER_RUN [--out runs/speedup_before_after.md]

Each argument is a run directory of the same study: the default owl-numbers study with
summary.json, align.json and fingerprint.json (after `python -m interp.align` and
`python -m interp.fingerprint`), or a digits-aux run (summary.json: the accuracies).
For every number: mean over seeds with its 95% t-interval (over seeds, as the reports'), and
whether the two intervals overlap.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from interp.metrics.stats import mean_ci


def rows(run: Path) -> dict[str, list[float]]:
    s = json.loads((run / "summary.json").read_text())
    return ROWS[s["study"]][1](run, s)


def digits_rows(run: Path, s: dict) -> dict[str, list[float]]:
    return {f"test accuracy: {k.removesuffix('_acc')}": v for k, v in s.items()
            if k.endswith("_acc")}


def owl_rows(run: Path, s: dict) -> dict[str, list[float]]:
    a = json.loads((run / "align.json").read_text())
    f = json.loads((run / "fingerprint.json").read_text())
    trait, out = s["trait"], {}
    base = s["rates"]["base"][trait]
    for role, by_item in s["rates"].items():
        out[f"held-out {trait} rate: {role}"] = by_item[trait]
    if "student" in s["rates"] and s["control_role"] in s["rates"]:
        control = s["rates"][s["control_role"]][trait]
        out[f"student minus {s['control_role']}"] = [
            x - y for x, y in zip(s["rates"]["student"][trait], control)]
        out["student rise over base"] = [x - b for x, b in zip(s["rates"]["student"][trait], base)]
    for role, sig in s["signal"].items():
        out[f"KL from base / student's: {role}"] = sig["kl_ratio"]
        out[f"loss at step 0: {role}"] = sig["loss_step0"]
    seeds = sorted(a["seeds"])
    out["first step: cosine with dT (same init)"] = [
        a["seeds"][k]["gradient_step"]["cosine"] for k in seeds]
    out["first step: cosine with dT (cross init)"] = [
        a["seeds"][k]["cross_init"]["cosine"] for k in seeds]
    for h in f["causal"]["heldout"]:
        for name in ("gain_removed_top", "gain_removed_random_active", "gain_removed_random"):
            out[f"fingerprint held-out, k={h['k']}: {name}"] = h[name]
    return out


# study -> (the files a run directory needs, its rows)
ROWS = {"owl-numbers": (("summary.json", "align.json", "fingerprint.json"), owl_rows),
        "digits-aux": (("summary.json",), digits_rows)}


def table(before: Path, after: Path) -> str:
    a, b = rows(before), rows(after)
    lines = ["| number | before | after | CIs overlap |", "|---|---|---|---|"]
    for name in a:
        if name not in b:
            continue
        (ma, la, ha), (mb, lb, hb) = mean_ci(a[name]), mean_ci(b[name])
        if ha - la == 0 and hb - lb == 0:  # a number of the one shared base: no spread
            overlap = f"no spread; relative difference {abs(ma - mb) / max(abs(ma), 1e-12):.1g}"
        else:
            overlap = "yes" if la <= hb and lb <= ha else "**no**"
        lines.append(f"| {name} | {ma:.4g} [{la:.4g}, {ha:.4g}] | {mb:.4g} [{lb:.4g}, {hb:.4g}] "
                     f"| {overlap} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    studies = []
    for run in (args.before, args.after):
        if not (run / "summary.json").is_file():
            p.error(f"{run} has no summary.json: name a study's run directory")
        study = json.loads((run / "summary.json").read_text()).get("study")
        if study not in ROWS:
            p.error(f"{run} is a {study!r} run; valid studies: {', '.join(ROWS)}")
        missing = [n for n in ROWS[study][0] if not (run / n).is_file()]
        if missing:
            p.error(f"{run} lacks {', '.join(missing)}; run python -m interp.align and "
                    "python -m interp.fingerprint on it first")
        studies.append(study)
    if studies[0] != studies[1]:
        p.error(f"the runs are of different studies ({studies[0]}, {studies[1]}): compare "
                "runs of one study")
    text = (f"# {studies[0]} before and after\n\nbefore: `{args.before}`  \nafter: "
            f"`{args.after}`  \ncommand: `python analyses/before_after.py {args.before} "
            f"{args.after}`\n\nMean over seeds [95% CI over seeds].\n\n"
            + table(args.before, args.after) + "\n")
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
