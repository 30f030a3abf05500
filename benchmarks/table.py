"""The markdown report: a header naming the machine, one table row per benchmark, notes."""

from __future__ import annotations

import os
import platform
import statistics
import time

import torch

from benchmarks.common import Goal, Measured, Row


def fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def status(goal: Goal, ratio: float) -> str:
    if not isinstance(goal, tuple):
        return "-"
    op, target = goal
    return "met" if (ratio <= target if op == "<=" else ratio >= target) else "MISSED"


def goal_text(goal: Goal) -> str:
    return "-" if goal is None else goal if isinstance(goal, str) else f"{goal[0]} {goal[1]:g}"


def _proc(path: str, field: str) -> str:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def machine() -> str:
    cpu = _proc("/proc/cpuinfo", "model name")
    if cpu == "?":
        cpu = platform.processor() or "?"
    kb = _proc("/proc/meminfo", "MemTotal").split()[0]
    ram = f"{int(kb) / 2**20:.1f} GiB RAM" if kb.isdigit() else "RAM ?"
    return (f"{cpu}, os.cpu_count() {os.cpu_count()}, {ram}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads")


def header(command: str, reps: int, quick: bool) -> str:
    mode = ("**quick** (smoke test: fewer repetitions, smaller sizes; not for comparison)"
            if quick else "full")
    return "\n".join([
        "# Benchmarks", "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        f"- mode: {mode}, {reps} paired repetitions", "",
        "Each repetition measures the baseline and the candidate back to back; the ratio is "
        "the median of the per-repetition ratios, with their min and max. Figure and "
        "baseline are medians."])


def table(results: list[tuple[Row, Measured | BaseException]]) -> str:
    lines = ["| row | what is measured | figure | baseline | ratio | median [min, max] | goal "
             "| status |", "|---|---|---|---|---|---|---|---|"]
    notes = []
    for row, m in results:
        if isinstance(m, BaseException):
            err = f"{type(m).__name__}: {m}".replace("|", "/").replace("\n", " ")[:200]
            lines.append(f"| {row.name} | {row.what} | error | - | {row.ratio} | - | "
                         f"{goal_text(row.goal)} | ERROR |")
            notes.append(f"- `{row.name}`: {err}")
            continue
        r = m.ratios
        med = statistics.median(r)
        fig = f"{fmt(statistics.median(m.candidate))} {m.unit}"
        fig += f" ({m.extra})" if m.extra else ""
        lines.append(f"| {row.name} | {row.what} | {fig} | "
                     f"{fmt(statistics.median(m.baseline))} {m.unit} | {row.ratio} | "
                     f"{med:.3g} [{min(r):.3g}, {max(r):.3g}] | {goal_text(row.goal)} | "
                     f"{status(row.goal, med)} |")
        if m.note:
            notes.append(f"- `{row.name}`: {m.note}")
    return "\n".join(lines + ([""] + notes if notes else []))


def report(command: str, reps: int, quick: bool,
           results: list[tuple[Row, Measured | BaseException]]) -> str:
    return header(command, reps, quick) + "\n\n" + table(results) + "\n"


def standalone(row: Row, measure, **sizes: int) -> None:
    """``python -m benchmarks.<row>``: that row alone, with ``--reps`` and its sizes as
    options (the keyword arguments of ``measure``, at these defaults)."""
    import argparse

    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{row.name}")
    p.add_argument("--reps", type=int, default=5)
    for name, default in sizes.items():
        p.add_argument(f"--{name}", type=int, default=default)
    args = vars(p.parse_args())
    reps = args.pop("reps")
    print(table([(row, measure(reps, **args))]))


def merge(existing: str, new: str) -> str:
    """``existing`` (a full report) with the rows and notes of ``new`` (a report of some rows)
    put in: a row of the same name is replaced, a new one appended; the header gains a line
    naming the re-measured rows with the new report's date, machine and command."""
    def parse(text: str) -> tuple[list[str], list[str], dict[str, str], dict[str, str]]:
        lines = text.rstrip("\n").split("\n")
        start = next(i for i, ln in enumerate(lines) if ln.startswith("| row |"))
        head, rows, notes, order = lines[:start], {}, {}, []
        for ln in lines[start + 2:]:
            if ln.startswith("| "):
                name = ln.split("|")[1].strip()
                rows[name] = ln
                order.append(name)
            elif ln.startswith("- `"):
                notes[ln[3:ln.index("`", 3)]] = ln
        return head, order, rows, notes

    head, order, rows, notes = parse(existing)
    new_head, new_order, new_rows, new_notes = parse(new)
    for name in new_order:
        if name not in rows:
            order.append(name)
    rows.update(new_rows)
    notes.update(new_notes)
    info = {ln.split(":", 1)[0][2:]: ln.split(":", 1)[1].strip()
            for ln in new_head if ln.startswith("- ") and ":" in ln}
    stamp = (f"- re-measured: {', '.join(new_order)} on {info.get('date', '?')} with "
             f"{info.get('command', '?')} ({info.get('machine', '?')}; {info.get('mode', '?')})")
    last_bullet = max(i for i, ln in enumerate(head) if ln.startswith("- "))
    body = head[:last_bullet + 1] + [stamp] + head[last_bullet + 1:]
    columns = ["| row | what is measured | figure | baseline | ratio | median [min, max] "
               "| goal | status |", "|---|---|---|---|---|---|---|---|"]
    return "\n".join(body + columns + [rows[n] for n in order] + [""]
                      + [notes[n] for n in order if n in notes]) + "\n"
