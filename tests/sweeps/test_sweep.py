"""Sweeps: spec checks, grid expansion, a local sweep killed half-way and resumed without
redoing finished studies, and the same sweep on a one-node Slurm giving identical numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interp.storage.store import Store
from interp.sweep import main
from interp.sweeps.runner import run_sweep
from interp.sweeps.spec import cells, load_spec
from tests.sweeps.slurm import ensure_cluster

ROOT = Path(__file__).resolve().parents[2]
# digits-aux cut to seconds: 3 cells, 2 seeds, one thread per worker
SPEC = """
study = "digits-aux"
preset = "small"
seeds = 2
set = ["student_steps=60", "teacher_steps=60", "checkpoint_every=30"]
threads = 1
columns = ["student_acc", "cross_init_acc"]
out = "{out}"

[grid]
hidden = [32, 48, 64]
"""


def write_spec(tmp: Path, name: str, out: Path, text: str = SPEC) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(text.format(out=out))
    return path


def run_cli(args: list[str], cache: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "INTERP_CACHE": str(cache), "PYTHONPATH": str(ROOT),
           "TQDM_DISABLE": "1"}
    return subprocess.Popen([sys.executable, "-m", "interp.sweep", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def values(out: Path) -> list:
    return [(c["label"], c["seeds"], c["metrics"]) for c in
            json.loads((out / "sweep.json").read_text())["cells"]]


@pytest.mark.parametrize("text,message", [
    ('study = "digits-aux"\nexecutor = "pbs"', "unknown executor 'pbs'; valid executors: "
                                              "local, slurm"),
    ('study = "nope"', "unknown study 'nope'; valid studies: digits-aux, lm-numbers, "
                          "owl-numbers, transfer"),
    ('study = "digits-aux"\nworkrs = 2', "unknown setting(s) workrs; valid settings:"),
    ('study = "digits-aux"\n[grid]\nhiden = [1]', "unknown setting 'hiden'"),
    ('study = "digits-aux"\n[grid]\nhidden = [0]', "hidden"),
    ('study = "digits-aux"\nmetric = "acc"', "unknown metric(s) acc for digits-aux; valid"),
    ('study = "digits-aux"\nworkers = 0', "workers must be an integer >= 1"),
    ('study = "digits-aux"\n[slurm]\ncpus = 2', "unknown slurm setting(s) cpus"),
    ("study = ", "is not valid TOML"),
])
def test_bad_specs_are_one_line_errors(tmp_path, capsys, text, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(f'out = "{tmp_path / "out"}"\n' + text + "\n")
    assert main([str(spec), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out" / "sweep.json").exists()


def test_grid_and_cells_expand_with_thread_keyed_run_dirs(tmp_path):
    grid = load_spec(write_spec(tmp_path, "g", tmp_path / "o"))
    cs = cells(grid)
    assert [c.label for c in cs] == ["hidden=32", "hidden=48", "hidden=64"]
    assert cs[0].sets[-1] == "hidden=32" and cs[0].config.hidden == 32
    assert cs[0].seeds == (0, 1)
    # the thread count is part of the run directory: other threads, other numbers
    assert cs[0].run_dir(grid, 1) != cs[0].run_dir(grid, 2)
    listed = tmp_path / "c.toml"
    listed.write_text('study = "owl-numbers"\npreset = "tiny"\nset = ["mode=sampled"]\n'
                      '[[cells]]\nlabel = "defaults"\n'
                      '[[cells]]\nset = ["student_steps=100", "student_lr=3e-3"]\n')
    cs = cells(load_spec(listed, seeds=1, set=["roles=student,control_base"]))
    assert [c.label for c in cs] == ["defaults", "student_steps=100 student_lr=3e-3"]
    assert cs[1].config.mode == "sampled" and cs[1].config.student_steps == 100
    assert cs[1].config.roles == ("student", "control_base") and cs[1].seeds == (0,)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The sweep on the local executor, one worker, killed once its first cell has finished
    and restarted: (output dir, cache, first cell's record before the restart, restart log)."""
    tmp = tmp_path_factory.mktemp("sweep-local")
    out, cache = tmp / "out", tmp / "cache"
    spec = write_spec(tmp, "local", out)
    proc = run_cli([str(spec), "--workers", "1"], cache, start_new_session=True)
    deadline = time.time() + 300
    records: list[Path] = []
    while time.time() < deadline and not records:
        records = sorted(out.glob("cells/*/sweep-cell.json"))
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    assert records, "no cell finished in 300 s"
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, mid-way
    proc.wait()
    first = {p: p.read_text() for p in records}
    assert len(first) < 3, "killed too late: every cell had finished"
    assert not (out / "sweep.json").exists()
    # the table of what has finished so far, running nothing
    run_sweep(load_spec(spec), Store(cache), progress=False, table_only=True)
    partial = json.loads((out / "sweep.json").read_text())
    assert len(partial["cells"]) == len(first) and len(partial["unfinished"]) == 3 - len(first)
    assert "**Partial: " in (out / "sweep.md").read_text()
    again = run_cli([str(spec), "--workers", "1"], cache)
    log, _ = again.communicate(timeout=600)
    assert again.returncode == 0, log
    return out, cache, first, log


@pytest.mark.slow
def test_killed_sweep_resumes_without_redoing_finished_studies(local_sweep):
    out, _, first, log = local_sweep
    n = len(first)
    assert f"3 cells ({n} finished earlier, skipped), {3 - n} to run" in log
    for path, text in first.items():
        assert path.read_text() == text  # not rerun: the record is untouched
    table = json.loads((out / "sweep.json").read_text())["cells"]
    assert len(table) == 3 and "Partial" not in (out / "sweep.md").read_text()
    assert [c["skipped"] for c in table].count(True) == n
    assert all(c["threads"] == 1 for c in table)
    assert (out / "sweep.md").read_text().count("| hidden=") == 3
    assert "interp-figures' content='1'" in (out / "sweep.html").read_text()


@pytest.mark.slow
def test_slurm_sweep_matches_local(local_sweep, tmp_path):
    reason = ensure_cluster()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Slurm test: {reason}")
        pytest.skip(reason)
    out_local, _, _, _ = local_sweep
    out = tmp_path / "out"
    # its own empty cache: every number is recomputed by the Slurm array's tasks
    proc = run_cli([str(write_spec(tmp_path, "slurm", out)), "--executor", "slurm",
                    "--workers", "2"], tmp_path / "cache")
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    assert "submitted Slurm job array" in log
    assert values(out) == values(out_local)
    jobs = json.loads((out / "sweep.json").read_text())["cells"]
    assert all(c["threads"] == 1 and not c["skipped"] for c in jobs)
    assert list((out / "jobs").glob("*_submission.sh"))


@pytest.mark.slow
def test_sweep_page_renders_its_figure(local_sweep):
    from tests.reports.browser import render
    from tests.reports.test_browser import ARTIFACTS, _need_browser

    _need_browser()
    r = render(local_sweep[0] / "sweep.html", ARTIFACTS / "screenshots" / "sweep.png")
    assert r.errors == [] and r.declared == 1 == r.rendered, r


def test_a_cell_without_the_first_metric_is_tabled_and_left_out_of_the_figure(tmp_path):
    """A cell that trains only another role (``roles=cross_init``) has no student rise: the
    table shows it with its own metrics, the figure names it instead of failing."""
    from interp.sweeps import table

    def cell(label: str, rates: dict) -> dict:
        return {"label": label, "sets": [], "run_dir": f"runs/{label}", "skipped": False,
                "record": {"threads": 1, "seconds": 1.0},
                "summary": {"seeds": [0, 1], "trait": "owl", "rates": rates}}
    r = lambda owl: {"owl": owl, "cat": [0.2, 0.2]}  # noqa: E731
    cells = [cell("student", {"student": r([0.3, 0.4]), "base": r([0.1, 0.1])}),
             cell("cross", {"cross_init": r([0.1, 0.12]), "base": r([0.1, 0.1]),
                            "base_cross": r([0.1, 0.1])})]
    cols = ["student_rise", "cross_init_rise"]
    rows = table.rows("owl-numbers", cols, cells)
    table.write(tmp_path, {"name": "t"}, "owl-numbers", cols, rows)
    assert rows[1]["metrics"]["student_rise"]["values"] == []
    assert rows[1]["metrics"]["cross_init_rise"]["mean"] == pytest.approx(0.01)
    assert "no value in cross" in (tmp_path / "sweep.html").read_text()
