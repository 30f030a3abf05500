"""Validate the pre-distillation audit against measured transfer on a sweep's variants.

    python -m interp.sweep sweeps/owl_audit.toml --workers 2
    python analyses/audit_validation.py runs/sweeps/owl_audit [--out runs/audit_validation.md]
                                        [--calibration runs/audit_calibration.json]

1. For every finished cell and seed, the audit's predictors (``interp.analysis.audit``; from
   the cell's base, teacher and teacher data and its planned process only, never a student),
   cached beside the cell as ``audit_predictors.json``; and the measured transfer: the
   student's rise in the trait's probability over its base's on the held-out questions.
2. A variant's value is its mean over seeds.
3. The variants split in two by a fixed permutation (seed 0): the combination (ridge on
   standardised predictors, the predictors chosen by forward selection on leave-one-out error
   within the fitting half) is fitted on one half and its Spearman correlation with the
   measurement reported on the other half, with each single predictor's Spearman on that same
   held-out half (its sign chosen on the fitting half), and on all variants.
4. The fitted calibration, with the SD of its held-out residuals as the interval's width, is
   saved for ``python -m interp.audit``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from interp.analysis.audit import FEATURES, Calibration, fit, inputs_from_run, predictors
from interp.cli import setup_logging
from interp.reports.html import md_table
from interp.storage.store import write_json, write_text


def cell_values(cell: Path) -> tuple[dict, float, int] | None:
    try:
        summary = json.loads((cell / "summary.json").read_text())
        json.loads((cell / "artifacts.json").read_text())
    except (OSError, ValueError):
        return None
    trait = summary["trait"]
    rates = summary["rates"]
    rises = [s - b for s, b in zip(rates["student"][trait], rates["base"][trait])]
    cache = cell / "audit_predictors.json"
    per_seed = json.loads(cache.read_text()) if cache.is_file() else {}
    for seed in map(str, summary["seeds"]):
        if seed not in per_seed:
            p, _ = predictors(inputs_from_run(cell, seed))
            per_seed[seed] = {k: p[k] for k in FEATURES + ("lls_total",)}
    write_json(cache, per_seed)
    mean = {k: float(np.nanmean([per_seed[s][k] for s in per_seed])) for k in FEATURES}
    return mean, float(np.mean(rises)), len(rises)


def loo_error(x: np.ndarray, y: np.ndarray, cols: list[int]) -> float:
    errs = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        cal = fit(x[keep][:, cols], y[keep], tuple(FEATURES[c] for c in cols))
        errs.append(cal.predict(dict(zip(cal.features, x[i, cols])))[0] - y[i])
    return float(np.mean(np.square(errs)))


def select(x: np.ndarray, y: np.ndarray, max_features: int = 3) -> list[int]:
    """Forward selection on leave-one-out squared error (within the fitting half only)."""
    chosen: list[int] = []
    best = math.inf
    while len(chosen) < max_features:
        trials = [(loo_error(x, y, chosen + [c]), c) for c in range(x.shape[1]) if c not in chosen]
        err, c = min(trials)
        if err >= best:
            break
        best, chosen = err, chosen + [c]
    return chosen


def rho(a: np.ndarray, b: np.ndarray) -> float:
    ok = ~np.isnan(a)
    return float(spearmanr(a[ok], b[ok])[0]) if ok.sum() > 2 else float("nan")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--out", type=Path, default=Path("runs/audit_validation.md"))
    p.add_argument("--calibration", type=Path, default=Path("runs/audit_calibration.json"))
    args = p.parse_args()
    setup_logging()
    cells = sorted(d for d in (args.sweep_dir / "cells").iterdir() if d.is_dir())
    labels, xs, ys, ns = [], [], [], []
    for cell in cells:
        v = cell_values(cell)
        if v is None:
            continue
        labels.append(cell.name.rsplit("-", 1)[0])
        xs.append([v[0][k] for k in FEATURES])
        ys.append(v[1])
        ns.append(v[2])
        print(f"{labels[-1]}: measured {v[1]:+.4f}", flush=True)
    x, y = np.array(xs), np.array(ys)
    n = len(y)
    perm = np.random.default_rng(0).permutation(n)
    train, test = np.sort(perm[:n // 2]), np.sort(perm[n // 2:])
    cols = select(x[train], y[train])
    cal = fit(x[train][:, cols], y[train], tuple(FEATURES[c] for c in cols))
    pred = np.array([cal.predict(dict(zip(cal.features, row[cols])))[0] for row in x])
    resid_sd = float(np.std(pred[test] - y[test]))
    cal = Calibration(cal.features, cal.mean, cal.sd, cal.coef, cal.intercept, resid_sd,
                      fitted_on=f"{args.sweep_dir.name}: {len(train)} variants (tiny preset); "
                                f"interval from {len(test)} held-out variants")
    write_json(args.calibration, dataclasses.asdict(cal))
    loo = np.array([cal_pred for cal_pred in (
        fit(x[np.arange(n) != i][:, cols], y[np.arange(n) != i], cal.features)
        .predict(dict(zip(cal.features, x[i, cols])))[0] for i in range(n))])
    # secondary (added after seeing the random split's result): half of each family of
    # variants (teacher_steps, trait, dataset_size, student_steps, mitigation kind...) on
    # each side, so that a family the fit never saw (e.g. student_steps) cannot decide it
    fam: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        key = re.sub(r"_[-0-9.e:]+$", "", lab) if lab.startswith("mitigation") else \
            re.sub(r"_[^_]*\d[^_]*$", "", lab)
        fam.setdefault("trait" if lab.startswith("trait_") else key, []).append(i)
    strat_fit, k = [], 0
    for members in fam.values():
        for m in members:
            if k % 2 == 0:
                strat_fit.append(m)
            k += 1
    s_train = np.array(sorted(strat_fit))
    s_test = np.array([i for i in range(n) if i not in set(strat_fit)])
    s_cols = select(x[s_train], y[s_train])
    s_cal = fit(x[s_train][:, s_cols], y[s_train], tuple(FEATURES[c] for c in s_cols))
    s_pred = np.array([s_cal.predict(dict(zip(s_cal.features, row[s_cols])))[0] for row in x])
    rows = []
    for j, f in enumerate(FEATURES):
        sign = np.sign(rho(x[train, j], y[train])) or 1.0
        rows.append((f, f"{sign * rho(x[test, j], y[test]):+.3f}", f"{rho(x[:, j], y):+.3f}",
                     "+" if sign > 0 else "-"))
    rows.append(("**combined** (" + ", ".join(cal.features) + ")",
                 f"**{rho(pred[test], y[test]):+.3f}**", f"{rho(loo, y):+.3f} (leave-one-out)",
                 "fitted"))
    rows.append(("combined, family-stratified split (" + ", ".join(s_cal.features) + ")",
                 f"{rho(s_pred[s_test], y[s_test]):+.3f} ({len(s_test)} variants)", "",
                 "fitted (secondary, see below)"))
    table = md_table(["predictor", f"held-out Spearman ({len(test)} variants)",
                      f"Spearman, all {n} variants", "sign (from the fitting half)"], rows)
    per_variant = md_table(
        ["variant", "half", "seeds", "measured rise", "predicted", *FEATURES],
        [(lab, "test" if i in set(test) else "fit", ns[i], f"{y[i] * 100:+.2f}%",
          f"{pred[i] * 100:+.2f}%", *(f"{v:.4g}" for v in x[i]))
         for i, lab in enumerate(labels)])
    md = "\n\n".join([
        "# The audit against measured transfer (owl-numbers, tiny preset)",
        f"Command: `python -m interp.sweep sweeps/owl_audit.toml --workers 2` then "
        f"`python analyses/audit_validation.py {args.sweep_dir}`. {n} variants, each the mean "
        "over its seeds; measured transfer = the student's rise in the trait's probability "
        "over its base's on the held-out questions. Predictors read only the base, the "
        "teacher, the teacher's data and the planned process (mode, mitigation, steps x lr).",
        f"The combination was fitted (forward selection + ridge) on {len(train)} variants and "
        f"is scored on the other {len(test)}; each single predictor's sign was chosen on the "
        f"fitting half. Prediction interval: +-1.96 x {resid_sd * 100:.2f}% (the SD of the "
        "held-out residuals). Tiny preset on a shared 2-core machine: the whole sweep is a "
        "1-layer d_model 32 model; nothing here is measured on the default study.",
        table,
        "The family-stratified row was added after the random split's result was seen: it "
        "puts half of each family of variants (every other one, in name order) on each "
        "side, so that no family is only in the held-out half. The random split (seed 0, "
        "fixed before any result) is the primary figure.",
        "## Per variant", per_variant,
        "Coefficients (standardised): " + ", ".join(
            f"{f} {c:+.4f}" for f, c in zip(cal.features, cal.coef)) +
        f"; intercept {cal.intercept:+.4f}. Saved to `{args.calibration}`."])
    write_text(args.out, md + "\n")
    print(md)


if __name__ == "__main__":
    main()
