"""How much the fingerprint's causal numbers depend on the SAE's own training: the same run
fingerprinted with SAEs of several seeds.

    python analyses/fingerprint_sae_seeds.py [RUN_DIR] [--sae-seeds 0 1 2] [--out FILE.md]

1. Run (or reuse) RUN_DIR, by default the default owl-numbers study (as ``make demo``).
2. For each SAE seed: ``interp.analysis.fingerprint.analyse`` with ``FingerprintConfig``'s
   SAE config at that seed (everything else the default: the same activations, prompts,
   split and selection rules), cached in the store like any fingerprint.
3. Per SAE seed: the chosen hook and k, and on the held-out prompts, for each k, the gain
   removed by the top-k features, by k random answer-active features and by k random
   features (mean [95% CI] over the study's seeds, as the report). The last rows: the
   spread of those means over SAE seeds, which no per-run CI covers.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from interp.analysis.fingerprint import FingerprintConfig, analyse
from interp.metrics.stats import fmt_ci, mean_ci
from interp.studies.runner import run_dir_or_default

NAMES = ("gain_removed_top", "gain_removed_random_active", "gain_removed_random")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", nargs="?", default=None)
    p.add_argument("--sae-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    run = run_dir_or_default(args.run_dir)
    base = FingerprintConfig()
    rows, means = [], {}
    for s in args.sae_seeds:
        fcfg = dataclasses.replace(base, sae=dataclasses.replace(base.sae, seed=s))
        c = analyse(run, fcfg)["causal"]
        for h in c["heldout"]:
            cells = [fmt_ci(h[n]) for n in NAMES]
            rows.append(f"| {s} | {c['hook']} | {c['k']} | {h['k']} | " + " | ".join(cells) + " |")
            for n in NAMES:
                means.setdefault((h["k"], n), []).append(mean_ci(h[n])[0])
    lines = [f"# Fingerprint causal numbers by SAE seed ({run})", "",
             f"command: `python analyses/fingerprint_sae_seeds.py {args.run_dir or ''} "
             f"--sae-seeds {' '.join(map(str, args.sae_seeds))}`".replace("  ", " "), "",
             "Held-out prompts; each cell is the mean [95% CI] over the study's seeds, as "
             "`fingerprint.md` reports it for one SAE.", "",
             "| SAE seed | chosen hook | chosen k | k | top-k removed | random answer-active "
             "| random |", "|---|---|---|---|---|---|---|", *rows, "",
             "Over SAE seeds (mean of the per-SAE means, min .. max):", "",
             "| k | number | mean | min .. max |", "|---|---|---|---|"]
    for (k, n), v in sorted(means.items()):
        lines.append(f"| {k} | {n} | {sum(v) / len(v):.1%} | {min(v):.1%} .. {max(v):.1%} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
