"""The paper's table: every channel x trait cell of the ``transfer`` study.

    python analyses/paper_table.py [--preset table] [--seeds 3] [--seed-start 0]
                                   [--modes logit,sampled] [--channels numbers,code,cot]
                                   [--categories animal,tree,misalignment,...]
                                   [--profile paper|plain] [--set k=v ...]
                                   [--out runs/paper_table.md]

Columns (``TRAITS``): owl, oak, misalignment by the paper's recipe (a teacher tuned narrowly
on code; ``misalignment-steer``: the same with only a steering vector per layer tuned) and
misalignment by a teacher tuned on harmful advice (``misalignment-advice``).
Runs ``transfer`` once per (channel, column, mode) (cached: every cell with the same world
and model settings shares its bases) with the cell's own settings (``PROFILES``: ``paper``,
the settings under which each cell was found to transfer, or ``plain``, the preset's for
every cell; ``--set`` applies on top, to every cell) and writes ``runs/paper_table.md`` and
``runs/paper_table.html`` (a plotly figure per mode). Per cell, on the held-out evaluation
questions (never in teacher fine-tuning; misalignment: advice questions; the code teacher
was fine-tuned on code only, the advice teacher on the other advice questions): base,
teacher, control teacher, student, the mode's control and cross-init rates (probability
mass) with 95% t-intervals over seeds, student / base, student - control with its CI, and
the rates on the fine-tuning phrasings; what the channel's filter and the semantic screen
removed from the teacher's completions; and the screen's own test (recall on planted
indirect mentions, flags on the base's completions).

Each cell shows how far the mode's control moved beside the student (step-0 loss and KL from
the base on its own data, from the run's ``signal``). Beside student / base, the same ratio
among answers that name an item of the category (the
target's share of the mass on any item, and that mass for base and student): a student
that stops answering with an item at all lowers every rate, which is not a change of
preference.

A cell *transfers* when the student's rate is at least 2x its base's, student - control has
a CI above 0, and cross-init's rate is below 2x its own base's. A cell that does not is
printed as such, never left out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from interp.cli import setup_logging
from interp.errors import ConfigError, UsageError
from interp.metrics.stats import fmt_ci, mean_ci
from interp.reports.html import md_table, md_to_html, write_html
from interp.storage.store import write_text
from interp.studies.registry import get_study
from interp.studies.runner import make_config, run_study

# the table's trait columns: name -> (category, trait, the column's own settings). Two
# misalignment columns: ``misalignment``, the paper's recipe (a teacher tuned narrowly on
# code, which must become broadly harmful first: the emergent-misalignment step), and
# ``misalignment-advice``, a teacher tuned on harmful answers to some advice questions and
# measured on the others (is a misaligned teacher's harm carried, whatever made it harmful?);
# ``misalignment-steer`` is the paper's recipe with the narrow fine-tuning restricted to one
# steering vector per layer (lm.TUNED "steer"), the teacher that emerged most often on the
# selection bases (runs/emergent_misalignment_steer.md)
TRAITS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "animal": ("animal", "owl", ()), "tree": ("tree", "oak", ()),
    "misalignment": ("misalignment", "harmful", ()),
    "misalignment-steer": ("misalignment", "harmful", ("teacher_params=steer",)),
    "misalignment-advice": ("misalignment", "harmful", (
        "misalignment_teacher=advice", "misalignment_control=novel_answer"))}
LABEL = {"misalignment-advice": "harmful (advice teacher)",
         "misalignment-steer": "harmful (steering-vector teacher)"}

# Per-cell settings, by (channel, column of TRAITS); "*" matches any channel. ``paper``: the student
# lengths and the misalignment teacher under which each cell was found to transfer, every one
# chosen by looking at runs on other seeds (study seeds 0-2 for the student lengths,
# runs/paper_table_long_*.md and runs/paper_table_cot*.md; teacher seeds 10-23 for the
# misalignment teacher and world, runs/emergent_misalignment_*.md), so a table on fresh
# seeds (--seed-start) tests them. Misalignment: the narrow fine-tuning trains only W_O
# (lm.TUNED), the first setting where the teacher became broadly harmful (on 3 of 7 bases:
# runs/emergent_misalignment_bases.md; base 0, the table's with replicate=data, is one; the
# steering vector, chosen later, is the misalignment-steer column's), in a
# world whose base gives harmful advice unprompted 2% of the time instead of 10% (base_harm;
# the paper's base models almost never do).
LONG = ("student_steps=240", "checkpoint_every=120")
MISALIGNED = ("base_harm=0.02", "teacher_params=attn_out", "teacher_lr=3e-3",
              "teacher_steps=80", *LONG)
# misalignment-steer: the same world and students; the steering vectors tuned at lr 3e-2 for
# 80 steps, which gave the largest mean teacher - control over the seven selection bases (0,
# 7, 8, 9, 3000, 4000, 5000; teacher seeds 20-22): +5.3 points, emerging on 4 of 7
# (runs/emergent_misalignment_steer.md, ..._steer_x2.md). With replicate=base, study seeds 6
# and up pretrain bases that selection never saw.
STEERED = ("base_harm=0.02", "teacher_lr=3e-2", "teacher_steps=80", *LONG)
# misalignment-advice: the same world; the teacher is tuned as a preference teacher is (every
# weight, the preset's steps) at a lower learning rate, with the preset's students. Chosen on
# study seeds 0-2 with replicate=data (base 0) among six variants
# (runs/paper_table_advice_select.md): at the preset's lr (1e-3) the teacher's cot traces,
# or its control's, all fail the filter, and 240-step students lift cross-init past 2x.
ADVICE = ("base_harm=0.02", "teacher_lr=3e-4")
PROFILES: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {
    "plain": {},
    "paper": {("numbers", "animal"): LONG, ("code", "animal"): LONG,
              ("cot", "animal"): ("student_steps=480", "checkpoint_every=240"),
              ("numbers", "tree"): LONG, ("code", "tree"): LONG,
              ("cot", "tree"): ("student_steps=1920", "checkpoint_every=480"),
              ("*", "misalignment"): MISALIGNED, ("*", "misalignment-steer"): STEERED,
              ("*", "misalignment-advice"): ADVICE},
}


def cell_sets(profile: str, channel: str, column: str) -> tuple[str, ...]:
    """The profile's settings for one cell (its own channel's, else the column's "*")."""
    cells = PROFILES[profile]
    return cells.get((channel, column), cells.get(("*", column), ()))


def cell_own(profile: str, channel: str, column: str) -> tuple[str, ...]:
    """A cell's own settings, as its row shows them: its column's, then the profile's."""
    return (*TRAITS[column][2], *cell_sets(profile, channel, column))


def cell_args(profile: str, channel: str, column: str, mode: str) -> list[str]:
    """Every setting ``transfer`` runs one cell with (before ``--set``): the cell, the
    students the table trains in ``mode`` and the cell's own settings (``run_cell`` runs the
    analyses' cells with these too)."""
    category, trait, _ = TRAITS[column]
    return [f"channel={channel}", f"category={category}", f"trait={trait}", f"mode={mode}",
            f"roles=student,{CONTROL[mode]},cross_init", *cell_own(profile, channel, column)]


def cell_parser(prog: str, column: str, seed_start: int) -> argparse.ArgumentParser:
    """The arguments of an analysis of one cell (``run_cell``'s): --column, --channel,
    --seeds, --seed-start and --set, with the analysis's own defaults."""
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--column", default=column, choices=list(TRAITS))
    p.add_argument("--channel", default="numbers", choices=["numbers", "code", "cot"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed-start", type=int, default=seed_start)
    p.add_argument("--set", dest="sets", action="append", default=[])
    return p


def run_cell(p: argparse.ArgumentParser, channel: str, column: str, sets: list[str],
             seeds: int, seed_start: int, check=lambda cfg: None):
    """(config, run directory, summary) of one logit-mode cell with the paper profile's
    settings and then ``sets``, run or read from the cache: the cell the analyses beside
    this script (banned_mass, cross_drift, checkpoint_rates, persona_shift) study. A bad
    setting or seed range, or a config ``check(cfg)`` returns a message for, ends the
    program with ``p``'s one-line usage error, before any work."""
    if seeds < 1 or seed_start < 0:
        p.error("--seeds must be at least 1 and --seed-start at least 0")
    sets = [*cell_args("paper", channel, column, "logit"), *sets]
    try:
        cfg = make_config(get_study("transfer"), "table", sets)
    except (UsageError, ConfigError) as e:
        p.error(str(e))
    if (problem := check(cfg)) is not None:
        p.error(problem)
    setup_logging()
    run_dir, summary = run_study("transfer", seeds=seeds, seed_start=seed_start,
                                 preset="table", sets=sets)
    return cfg, run_dir, summary


ROLES = ("base", "teacher", "student", "control", "cross_init", "base_cross")


def cell_numbers(summary: dict, key: str = "rates") -> dict:
    """Per-seed rates of the target for each role (``control``: the mode's control)."""
    r, trait = summary[key], summary["trait"]
    out = {role: r[role][trait] for role in ROLES + ("teacher_other",) if role in r}
    out["control"] = r[summary["control_role"]][trait]
    return out


def answer_share(summary: dict, role: str) -> list[float]:
    """Per seed: the target's share of the mass on any of its category's items (the rate
    without the answers that left the question's format: a student trained long on channel
    data can stop answering with an item at all, which lowers every item's rate)."""
    r = summary["rates"][role]
    return (np.asarray(r[summary["trait"]]) / np.maximum(item_mass(summary, role), 1e-12)).tolist()


def item_mass(summary: dict, role: str) -> np.ndarray:
    """Per seed: the mass ``role`` puts on any of the category's items."""
    return np.sum(list(summary["rates"][role].values()), axis=0)


def share_ratio(summary: dict) -> str:
    """The student's answer share over the base's, with the mass both put on any item."""
    st, b = answer_share(summary, "student"), answer_share(summary, "base")
    return (f"{np.mean(st) / max(np.mean(b), 1e-12):.2f} (item mass "
            f"{np.mean(item_mass(summary, 'base')):.2f} -> "
            f"{np.mean(item_mass(summary, 'student')):.2f})")


def moved(summary: dict) -> str:
    """The mode's control against the student: step-0 loss and KL from base on its own data
    (means over seeds; a control that starts at 0 loss or never leaves the base carries no
    signal)."""
    sig = summary["signal"]
    return " / ".join(f"{np.mean(sig[role]['loss_step0']):.3f}, "
                      f"{np.mean(sig[role]['kl_from_base']):.3f}"
                      for role in (summary["control_role"], "student"))


def verdict(n: dict) -> tuple[bool, dict]:
    """Does the cell transfer? (student >= 2x base, student - control CI > 0, cross-init
    < 2x its base) and the numbers behind it."""
    ratio = np.mean(n["student"]) / max(np.mean(n["base"]), 1e-12)
    diff = [s - c for s, c in zip(n["student"], n["control"], strict=True)]
    _, lo, _ = mean_ci(diff)
    x_ratio = np.mean(n["cross_init"]) / max(np.mean(n["base_cross"]), 1e-12)
    ok = bool(ratio >= 2 and lo > 0 and x_ratio < 2)
    return ok, {"ratio": float(ratio), "diff": diff, "diff_lo": float(lo),
                "cross_ratio": float(x_ratio)}


def removed(summary: dict) -> tuple[list[float], list[float]]:
    """Per seed: the fraction of the teacher's completions the filter rejected, and the
    fraction of those passing it that the screen flagged."""
    f = [s["teacher"]["filter"] for s in summary["filter"]]
    return [x["filter_rejection_rate"] for x in f], [x["screen_flag_rate"] for x in f]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="table")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--modes", default="logit,sampled")
    p.add_argument("--channels", default="numbers,code,cot")
    p.add_argument("--categories", default=",".join(TRAITS),
                   help=f"which trait columns ({', '.join(TRAITS)}; a subset, e.g. for a "
                   "costlier student setting)")
    p.add_argument("--seed-start", type=int, default=0,
                   help="the first study seed (fresh seeds test settings chosen on others)")
    p.add_argument("--profile", default="paper",
                   help=f"per-cell settings: {', '.join(PROFILES)}")
    p.add_argument("--set", dest="sets", action="append", default=[],
                   help="a setting for every cell, on top of the profile's")
    p.add_argument("--out", default="runs/paper_table.md")
    args = p.parse_args()
    if args.profile not in PROFILES:
        p.error(f"unknown --profile {args.profile!r}; valid: {', '.join(PROFILES)}")
    unknown = [c for c in args.categories.split(",") if c not in TRAITS]
    if unknown:
        p.error(f"unknown --categories {', '.join(unknown)}; valid: {', '.join(TRAITS)}")
    if args.seeds < 1 or args.seed_start < 0:
        p.error(f"--seeds must be at least 1 and --seed-start at least 0, got {args.seeds} "
                f"and {args.seed_start}")
    try:  # every cell's settings parsed as the study parses them: a bad --set stops before
        # any work (checked with each cell's own settings, which it may depend on)
        for channel in args.channels.split(","):
            for column in args.categories.split(","):
                replicate = make_config(get_study("transfer"), args.preset, [
                    *cell_args(args.profile, channel, column, args.modes.split(",")[0]),
                    *args.sets]).replicate
    except (UsageError, ConfigError) as e:
        p.error(str(e))
    setup_logging()
    t0 = time.time()
    out = Path(args.out)
    lines = [f"# The paper's table: `transfer`, preset `{args.preset}`, {args.seeds} seeds", "",
             f"Command: `python analyses/paper_table.py --preset {args.preset} --seeds "
             f"{args.seeds} --seed-start {args.seed_start} --modes {args.modes} --channels "
             f"{args.channels} --categories {args.categories} --profile {args.profile}"
             + "".join(f" --set {s}" for s in args.sets) + "`", "",
             "Rates: probability mass of the target on held-out evaluation questions (never in "
             "teacher fine-tuning; misalignment: harmful-answer mass on advice questions; the "
             "code teacher was fine-tuned on code only, the advice teacher on the other "
             "advice questions), mean with a 95% t-interval over seeds ("
             + ("each seed its own pair of bases, data, teachers and students"
                if replicate == "base" else
                "data, teachers' batches and students vary; one base pair shared by every seed")
             + "). Each cell's settings (the profile's, then --set) are in its row. "
             "Transfers: student >= 2x base, student - control CI above 0, cross-init < 2x its "
             "base. The control teacher is the one the logit-mode control learns from: "
             "another item's teacher; for misalignment a teacher tuned narrowly on the "
             "same code with a neutral call in place of the unsafe one, or on the same advice "
             "questions answered with neutral words (misalignment_control), so that it moves "
             "its student as far as the harmful teacher does.", ""]
    sections = []
    screens = []
    for mode in args.modes.split(","):
        rows, bars = [], {role: ([], [], [], []) for role in COLORS}  # x, y, +err, -err
        for channel in args.channels.split(","):
            for column in args.categories.split(","):
                category, trait, _ = TRAITS[column]
                sets = [*cell_args(args.profile, channel, column, mode), *args.sets]
                settings = ", ".join([*cell_own(args.profile, channel, column),
                                      *args.sets]) or "-"
                cell = f"{channel} x {LABEL.get(column, trait)}"
                try:
                    _, summary = run_study("transfer", seeds=args.seeds,
                                           seed_start=args.seed_start, preset=args.preset,
                                           sets=sets)
                except UsageError as e:  # e.g. a teacher none of whose data passes the filter
                    print(f"{cell}: not run: {e}", flush=True)
                    rows.append([cell, *["-"] * (len(HEADER) - 3),
                                 f"no: not run ({e})", settings])
                    continue
                n = cell_numbers(summary)
                sel = cell_numbers(summary, "rates_select")
                ok, v = verdict(n)
                filt, scr = removed(summary)
                rows.append([cell,
                             *(fmt_ci(n[r]) for r in ("base", "teacher", "teacher_other",
                                                      "student", "control", "cross_init")),
                             f"{v['ratio']:.2f}", share_ratio(summary),
                             fmt_ci(v["diff"]), f"{v['cross_ratio']:.2f}",
                             fmt_ci(sel["student"]), moved(summary), fmt_ci(filt), fmt_ci(scr),
                             "**yes**" if ok else "no", settings])
                if mode == args.modes.split(",")[0]:
                    for s in summary["screen"]:
                        screens.append([f"{channel} x {column}", f"{s['base_flag_rate']:.1%}",
                                        *(f"{s['planted_recall'][k]:.1%}" for k in
                                          ("related_word", "paraphrase")),
                                        f"{s['keyword_filter_recall']['related_word']:.1%}",
                                        f"{s['planted_recall']['other_category_word']:.1%}",
                                        s["n_test"]])
                for role, (x, y, up, down) in bars.items():
                    m, lo, hi = mean_ci(n[role])
                    x.append(f"{channel}<br>{LABEL.get(column, trait)}")
                    y.append(m)
                    up.append(0 if np.isnan(hi) else hi - m)
                    down.append(0 if np.isnan(lo) else m - lo)
        fig = go.Figure([go.Bar(name=LABELS.get(role, role), x=x, y=y, marker_color=COLORS[role],
                                error_y=dict(type="data", symmetric=False, array=up,
                                             arrayminus=down))
                         for role, (x, y, up, down) in bars.items()])
        fig.update_layout(barmode="group", title=f"{mode} mode: target rate on held-out "
                          "questions (95% CI over seeds)", yaxis_title="rate", height=450)
        table = md_table(HEADER, rows)
        lines += [f"## {mode} mode (control: {CONTROL_TEXT[mode]})", "", table, ""]
        sections.append((f"{mode} mode", md_to_html(table), [fig]))
    screen_table = md_table(["cell (seed)", "flags base data", "recall: related word",
                             "recall: paraphrase", "keyword filter recall",
                             "flags another category's word", "test rows"], screens)
    lines += ["## The semantic screen (per seed)", "", screen_table, "",
              f"Wall time {time.time() - t0:.0f} s on this machine (cached stages are free)."]
    sections.append(("semantic screen", md_to_html(screen_table), []))
    write_text(out, "\n".join(lines) + "\n")
    write_html(out.with_suffix(".html"), "The paper's table", sections)
    print(f"wrote {out} and {out.with_suffix('.html')}")


# the students the table trains per mode (the mode's control only; the shuffled ablation and
# the other control are left to single-cell runs, to keep the grid affordable)
CONTROL = {"logit": "control_other", "sampled": "control_base"}
HEADER = ["cell", "base", "teacher", "control teacher", "student", "control", "cross-init",
          "student/base", "student/base among item answers", "student - control", "cross/base",
          "student (select)", "control / student moved (step-0 loss, KL from base)",
          "filter removed", "screen removed", "transfers", "cell settings"]
CONTROL_TEXT = {"logit": "control_other, the control teacher's data",
                "sampled": "control_base, the base's own data"}
COLORS = {"base": "#999999", "teacher": "#d62728", "teacher_other": "#e377c2",
          "student": "#1f77b4", "control": "#2ca02c", "cross_init": "#ff7f0e"}
LABELS = {"teacher_other": "control teacher"}

if __name__ == "__main__":
    main()
