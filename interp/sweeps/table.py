"""The sweep table: one row per cell, its metrics per seed with 95% CIs over seeds, written
as ``sweep.json`` (values), ``sweep.md`` (the table) and ``sweep.html`` (a plotly figure of
the chosen metric per cell, mean and 95% CI over seeds, the seeds as dots).

Metrics are plain functions of a study's ``summary.json`` returning one value per seed
(a small registry per study; ``python -m interp.sweep --list-metrics``). The first of a
spec's ``columns`` (or its ``metric``) is the figure's.

Owns: ``METRICS``, ``metric_names``, ``rows``, ``write``. Must not import: analysis, the CLIs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interp.errors import UsageError
from interp.metrics.stats import fmt_ci, mean_ci
from interp.metrics.transfer import control_role, transfer
from interp.reports.html import bar_with_ci, md_table, md_to_html, write_html
from interp.storage.store import write_json, write_text


@dataclasses.dataclass(frozen=True)
class Metric:
    what: str
    fn: Callable[[dict], list[float]]
    pct: bool = True  # a rate (shown in %) or a ratio/plain number


def _owl(role: str, field: str) -> Callable[[dict], list[float]]:
    def fn(s: dict) -> list[float]:
        t = transfer(s)
        r = control_role(s) if role == "control" else role
        return list(t[r][field]) if r in t else []
    return fn


def _rate(role: str) -> Callable[[dict], list[float]]:
    def fn(s: dict) -> list[float]:
        r = control_role(s) if role == "control" else role
        return list(s["rates"][r][s["trait"]]) if r in s["rates"] else []
    return fn


METRICS: dict[str, dict[str, Metric]] = {
    "owl-numbers": {
        "student_minus_control": Metric(
            "student's target rate minus the mode's control's (held-out questions)",
            lambda s: list(transfer(s).get("student_minus_control", []))),
        "base_target": Metric("the base's rate of the target", _rate("base")),
        "student_target": Metric("the student's rate of the target", _rate("student")),
        "control_target": Metric("the mode's control's rate of the target", _rate("control")),
        "student_ratio": Metric("student's target rate / its base's", _owl("student", "ratio"),
                                pct=False),
        "student_rise": Metric("student's target rate minus its base's",
                               _owl("student", "rise")),
        "student_nontarget_rise": Metric("student: mean rise of the other items",
                                         _owl("student", "nontarget_rise")),
        "control_rise": Metric("the mode's control: target rise over base",
                               _owl("control", "rise")),
        "cross_init_rise": Metric("cross-init student: target rise over its base",
                                  _owl("cross_init", "rise")),
        "shuffled_rise": Metric("shuffled-target student: target rise over base",
                                _owl("shuffled", "rise")),
        "filter_rejects": Metric("share of the teacher's samples the filter rejects",
                                 lambda s: [f["teacher"]["filter"]["rejection_rate"]
                                            for f in s["filter"]]),
    },
    "digits-aux": {
        "student_acc": Metric("same-init student's digit accuracy (aux logits only)",
                              lambda s: list(s["student_acc"])),
        "cross_init_acc": Metric("cross-init student's digit accuracy",
                                 lambda s: list(s["cross_init_acc"])),
        "all_logits_acc": Metric("all-logits student's digit accuracy",
                                 lambda s: list(s["all_logits_acc"])),
        "teacher_acc": Metric("teacher's digit accuracy", lambda s: list(s["teacher_acc"])),
        "student_minus_cross": Metric("same-init minus cross-init accuracy",
                                      lambda s: [a - b for a, b in zip(s["student_acc"],
                                                                       s["cross_init_acc"])]),
    },
}
DEFAULT_METRIC = {"owl-numbers": "student_minus_control", "digits-aux": "student_minus_cross"}


def metric_names(study: str) -> list[str]:
    return list(METRICS.get(study, {}))


def check_columns(study: str, columns: list[str]) -> list[str]:
    """The columns to show (default: the study's default metric); unknown names are a
    one-line error listing the valid ones."""
    cols = columns or [DEFAULT_METRIC.get(study, "")]
    valid = METRICS.get(study, {})
    bad = [c for c in cols if c not in valid]
    if bad:
        raise UsageError(f"unknown metric(s) {', '.join(bad)} for {study}; valid metrics: "
                         f"{', '.join(valid) or '(none registered)'}")
    return cols


def _finite(xs: list[float]) -> list[float | None]:
    return [float(x) if math.isfinite(x) else None for x in xs]


def rows(study: str, columns: list[str], cells: list[dict[str, Any]]) -> list[dict]:
    """Per cell (``label``, ``sets``, ``run_dir``, ``summary``, ``record``, ``skipped``): its
    metrics per seed with mean and 95% CI over seeds."""
    out = []
    for c in cells:
        s = c["summary"]
        metrics = {}
        for name in columns:
            v = [float(x) for x in METRICS[study][name].fn(s)]
            m, lo, hi = mean_ci(v) if v else (math.nan, math.nan, math.nan)
            metrics[name] = {"values": _finite(v), "mean": _finite([m])[0],
                             "ci95": _finite([lo, hi])}
        out.append({"label": c["label"], "sets": list(c["sets"]), "run_dir": str(c["run_dir"]),
                    "seeds": list(s["seeds"]), "threads": c["record"]["threads"],
                    "seconds": c["record"]["seconds"], "skipped": c["skipped"],
                    "metrics": metrics})
    return out


def _cell_text(study: str, name: str, m: dict) -> str:
    vals = [x for x in m["values"] if x is not None]
    return fmt_ci(vals, pct=METRICS[study][name].pct, digits=2 if METRICS[study][name].pct
                  else 3)


def markdown(study: str, columns: list[str], table: list[dict]) -> str:
    head = ["cell", *columns, "seconds", "run"]
    body = [[r["label"], *(_cell_text(study, n, r["metrics"][n]) for n in columns),
             f"{r['seconds']:.0f}" + (" (earlier)" if r["skipped"] else ""), r["run_dir"]]
            for r in table]
    return md_table(head, body)


def write(out: Path, spec: dict, study: str, columns: list[str], table: list[dict],
          missing: list[str] | None = None) -> None:
    """``sweep.json``, ``sweep.md`` and ``sweep.html`` in ``out`` (each written atomically);
    ``missing``: cells not finished yet (a partial table says so first)."""
    first = columns[0]
    metric = METRICS[study][first]
    seeds = len(table[0]["seeds"]) if table else 0
    threads = table[0]["threads"] if table else "?"
    notes = (f"Sweep `{spec['name']}`: study {study}, {len(table)} cells, "
             f"{seeds} seeds each, {threads} torch threads per worker. Values: mean over "
             "seeds [95% t interval over seeds]"
             + (" in %" if metric.pct else "") + ". Metrics: "
             + "; ".join(f"`{n}`: {METRICS[study][n].what}" for n in columns) + ".")
    if missing:
        notes = (f"**Partial: {len(missing)} cell(s) not finished and not shown: "
                 f"{', '.join(missing)}.** " + notes)
    md = f"# Sweep {spec['name']}\n\n{notes}\n\n{markdown(study, columns, table)}\n"
    write_json(out / "sweep.json", {"spec": spec, "study": study, "columns": columns,
                                   "cells": table, "unfinished": list(missing or [])})
    write_text(out / "sweep.md", md)
    k = 100 if metric.pct else 1
    groups = {r["label"]: [x * k for x in r["metrics"][first]["values"] if x is not None]
              for r in table}
    empty = [label for label, v in groups.items() if not v]  # e.g. a cell without that role
    groups = {label: v for label, v in groups.items() if v}
    fig = bar_with_ci(groups, f"{first} per cell (mean, 95% CI over seeds)"
                      + (f"; no value in {', '.join(empty)}" if empty else ""),
                      first + (" (%)" if metric.pct else ""))
    write_html(out / "sweep.html", f"Sweep {spec['name']}",
               [("Table", f"<p>{notes}</p>" + md_to_html(markdown(study, columns, table)), []),
                (first, f"<p>{metric.what}</p>", [fig])])
