"""Fault injection against the real command-line tools: the cases behind
``tests/storage/test_faults.py`` and ``analyses/fault_table.py``.

Every case runs ``python -m interp.study`` / ``interp.align`` / ``interp.cache`` as
subprocesses on small configs (owl-numbers ``tiny`` and digits-aux ``small`` with fewer
steps), injects a fault (kill -9 at a stage, a concurrent run, gc in a loop, a corrupted
entry, a full or read-only location, bad input) and returns table rows:

    case | recovered | numbers identical | nothing lost | note

*recovered*: the tool ended as it should (a resumed run finished; bad input was a one-line
error, exit code 2, no traceback). *numbers identical*: the finished run's summary.json
is byte-identical to an uninterrupted run's. *nothing lost*: every artifact the run
directory names is present and verifies against its store entry, no temp file is left
in the run directory, and nothing that was fine before the fault was removed.

Bad input is checked in one subprocess that calls each CLI's ``main(argv)`` in turn (the
same function ``python -m`` runs; a fresh interpreter per input would cost ~10 s of
imports each); a traceback there is caught and reported as a failure.

A full disk is a small tmpfs (``mount -t tmpfs -o size=...``, needs root); a read-only
location is a read-only tmpfs. Without mount rights those rows say so and count as
not run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

OWL = ["owl-numbers", "--preset", "tiny", "--seeds", "1",
       *[a for kv in ("pretrain_steps=150", "n_samples=60", "dataset_size=30", "teacher_steps=10",
                      "student_steps=4", "checkpoint_every=2", "eval_samples=10")
         for a in ("--set", kv)]]
DIGITS = ["digits-aux", "--preset", "small", "--seeds", "2",
          *[a for kv in ("teacher_steps=20", "student_steps=20", "checkpoint_every=10")
            for a in ("--set", kv)]]
# a seed's students (student and every control) train as one stack: one stage, "student"
OWL_KINDS = ("base", "eval", "teacher", "data", "student")
DIGITS_KINDS = ("teachers", "students")


@dataclasses.dataclass
class Row:
    case: str
    recovered: bool
    identical: bool | None  # None: no numbers to compare (the run is refused)
    nothing_lost: bool
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.recovered and self.identical is not False and self.nothing_lost


@dataclasses.dataclass
class Proc:
    rc: int
    out: str
    err: str

    def one_line_error(self) -> bool:
        lines = [ln for ln in self.err.splitlines() if ln.strip()]
        return (self.rc == 2 and "Traceback" not in self.err and bool(lines)
                and lines[-1].startswith("error: ")
                and sum(ln.startswith("error: ") for ln in lines) == 1)


def env(cache: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "INTERP_CACHE": str(cache),
            "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "WANDB_MODE": "disabled"}


def cli(module: str, args: list[str], cache: Path, timeout: float = 600) -> Proc:
    p = subprocess.run([sys.executable, "-m", f"interp.{module}", *args], cwd=ROOT,
                       env=env(cache), capture_output=True, text=True, timeout=timeout)
    return Proc(p.returncode, p.stdout, p.stderr)


def study(spec: list[str], out: Path, cache: Path) -> Proc:
    return cli("study", ["run", *spec, "--out", str(out)], cache)


def study_until(spec: list[str], out: Path, cache: Path, marker: str) -> tuple[bool, str]:
    """Run the study and kill -9 it as soon as a log line contains ``marker`` (the
    process is then in the middle of that stage). Returns (killed, log)."""
    p = subprocess.Popen([sys.executable, "-m", "interp.study", "run", *spec, "--out", str(out)],
                         cwd=ROOT, env=env(cache), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    log = []
    assert p.stderr is not None
    for line in p.stderr:
        log.append(line)
        if marker in line:
            p.send_signal(signal.SIGKILL)
            break
    p.wait()
    return p.returncode == -signal.SIGKILL, "".join(log)


def intact(run_dir: Path, cache: Path) -> tuple[bool, str]:
    """Every artifact named in artifacts.json is present and verifies; no temp files are
    left in the run directory; no half-written entry is left in the cache."""
    from interp.storage.store import Store

    store = Store(cache)
    try:
        art = json.loads((run_dir / "artifacts.json").read_text())
        paths = [p for roles in art["seeds"].values() for p in roles.values()]
        for p in paths:
            store.read(p)
    except Exception as e:  # noqa: BLE001 - reported in the table
        return False, f"artifact check failed: {e}"
    tmps = [f.name for f in run_dir.iterdir() if f.name.endswith(".tmp")]
    if tmps:
        return False, f"temp files left in the run dir: {tmps}"
    half = [str(p) for p in cache.rglob(".tmp-*")]
    if half:
        return False, f"half-written entries left in the cache: {half}"
    return True, f"{len(paths)} artifacts verified"


def snapshot(cache: Path) -> dict[str, bytes]:
    """The cache's entries (not refs or locks), to show nothing was lost or changed."""
    return {str(f.relative_to(cache)): f.read_bytes() for f in sorted(cache.rglob("*"))
            if f.is_file() and not f.name.endswith(".lock")
            and f.relative_to(cache).parts[0] != "refs"}


def built_keys(log: str) -> list[str]:
    """``kind/key`` of every entry a run's log says it started building, in order."""
    return re.findall(r"cache miss (\S+): building", log)


def misses(log: str, study_name: str, kind: str) -> int:
    return log.count(f"cache miss {study_name}/{kind}/")


def corrupt_entries(log: str) -> int:
    return log.count("corrupt entry")


@dataclasses.dataclass
class Baseline:
    run: Path
    cache: Path
    summary: bytes


class Lab:
    """A scratch directory and the uninterrupted baseline runs the cases compare with."""

    def __init__(self, base: Path):
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self._baselines: dict[str, Baseline] = {}
        self._n = 0

    def path(self, name: str) -> Path:
        self._n += 1
        return self.base / f"{self._n:02d}-{name}"

    def baseline(self, which: str) -> Baseline:
        """The uninterrupted run (reused when the scratch dir already holds it)."""
        if which not in self._baselines:
            spec = OWL if which == "owl" else DIGITS
            run, cache = self.base / f"{which}-baseline", self.base / f"{which}-baseline-cache"
            if not (run / "summary.json").is_file():
                p = study(spec, run, cache)
                assert p.rc == 0, p.err[-3000:]
            self._baselines[which] = Baseline(run, cache, (run / "summary.json").read_bytes())
        return self._baselines[which]

    def cache_copy(self, which: str, name: str) -> Path:
        dst = self.path(name)
        shutil.copytree(self.baseline(which).cache, dst)
        shutil.rmtree(dst / "refs", ignore_errors=True)  # the copy's runs are new
        return dst


def finished(lab: Lab, which: str, run: Path, cache: Path,
             p: Proc | None) -> tuple[bool, bool, bool, str]:
    """(recovered, identical, nothing lost, note) of a run that should have finished."""
    if p is not None and p.rc != 0:
        return False, False, False, f"exit {p.rc}: {p.err.strip().splitlines()[-1:]}"
    ok, note = intact(run, cache)
    same = (run / "summary.json").read_bytes() == lab.baseline(which).summary
    return True, same, ok, note


# ------------------------------------------------------------------ the cases
def kill_chain(lab: Lab, which: str) -> list[Row]:
    """kill -9 in the middle of each stage in turn, resuming after each; before the
    resume after the student kill (owl) run ``gc`` (an interrupted run's stages must
    survive it); a temp file of a report killed mid-write is dropped in before the last
    resume (it must be cleaned). Then finish and compare with the baseline."""
    spec, kinds = (OWL, OWL_KINDS) if which == "owl" else (DIGITS, DIGITS_KINDS)
    name = "owl-numbers" if which == "owl" else "digits-aux"
    run, cache = lab.path(f"{which}-kill-run"), lab.path(f"{which}-kill-cache")
    rows, gc_note = [], ""
    killed_at = []
    for kind in kinds:
        if which == "owl" and kind == "student":  # gc after a kill, before the resume
            from interp.storage.store import Store

            orphan = Store(cache).put("orphan", {"n": 1}, {"t": {"x": _ones()}})
            g = cli("cache", ["gc", "--grace", "0"], cache)
            gc_note = (f"gc after the kill: exit {g.rc}, orphan removed: "
                       f"{not orphan.path.exists()}")
            if g.rc != 0 or orphan.path.exists():
                rows.append(Row("gc after kill -9", False, None, False, gc_note))
        killed, log = study_until(spec, run, cache, f"cache miss {name}/{kind}/")
        killed_at.append((kind, killed, log))
    (run / f".report.html.{'0123abcd'}.tmp").write_text("left by a killed writer")
    p = study(spec, run, cache)
    rec, same, ok, note = finished(lab, which, run, cache, p)
    done: set[str] = set()  # entries whose build finished before a kill
    rebuilt_by: dict[int, list[str]] = {}  # attempt -> what it rebuilt that had finished
    for i, (kind, killed, log) in enumerate(killed_at):
        built = built_keys(log)
        later = killed_at[i + 1][2] if i + 1 < len(killed_at) else p.err
        done |= set(built[:-1] if killed else built)  # the last one was killed mid-build
        # the attempt after this kill must not rebuild anything that had finished
        rebuilt = rebuilt_by[i + 1] = sorted(done & set(built_keys(later)))
        rows.append(Row(f"{which}: kill -9 while building {kind}, resume", killed and rec
                        and not rebuilt, same, ok,
                        ("" if killed else "stage never started (not killed); ")
                        + (f"rebuilt {rebuilt}; " if rebuilt else "") + note))
    if which == "owl":
        # the attempt right after gc is the one killed at "student"
        no_rebuild = not rebuilt_by[OWL_KINDS.index("student")]
        rows.append(Row("gc after kill -9, then resume", rec and no_rebuild and
                        "orphan removed: True" in gc_note, same, ok,
                        gc_note + f"; resume rebuilt nothing that had finished: {no_rebuild}"))
        rows.append(Row("killed report writer's .report.html.*.tmp", rec, same,
                        not list(run.glob(".*.tmp")), "the resumed run removed it"))
    return rows


def _ones():
    import torch

    return torch.ones(3)


def concurrent(lab: Lab) -> list[Row]:
    """Two identical digits runs at once on one empty cache: each stage is built once."""
    cache = lab.path("concurrent-cache")
    runs = [lab.path(f"concurrent-run{i}") for i in (1, 2)]
    procs = [subprocess.Popen([sys.executable, "-m", "interp.study", "run", *DIGITS, "--out",
                               str(r)], cwd=ROOT, env=env(cache), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in runs]
    outs = [Proc(p.wait(), *p.communicate()) for p in procs]
    logs = "".join(o.err for o in outs)
    once = all(misses(logs, "digits-aux", k) == 1 for k in DIGITS_KINDS)
    res = [finished(lab, "digits", r, cache, o) for r, o in zip(runs, outs)]
    return [Row("two concurrent identical runs, one cache", all(r[0] for r in res) and once,
                all(r[1] for r in res), all(r[2] for r in res),
                f"each stage built once: {once}; " + res[0][3])]


def gc_during_run(lab: Lab) -> list[Row]:
    """``gc --grace 0`` in a loop every second while an owl run builds all its stages."""
    cache, run = lab.path("gcloop-cache"), lab.path("gcloop-run")
    from interp.storage.store import Store

    orphan = Store(cache).put("orphan", {"n": 1}, {"t": {"x": _ones()}})
    p = subprocess.Popen([sys.executable, "-m", "interp.study", "run", *OWL, "--out", str(run)],
                         cwd=ROOT, env=env(cache), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    gcs, bad = 0, []
    while p.poll() is None:
        g = cli("cache", ["gc", "--grace", "0"], cache)
        gcs += 1
        if g.rc != 0:
            bad.append(g.err.strip()[-300:])
        time.sleep(1)
    out = Proc(p.returncode, *p.communicate())
    rec, same, ok, note = finished(lab, "owl", run, cache, out)
    return [Row("gc --grace 0 every second during an owl run", rec and not bad and gcs > 1
                and not orphan.path.exists(), same, ok,
                f"{gcs} gc runs, {len(bad)} failed, unreferenced entry removed: "
                f"{not orphan.path.exists()}; {note}")]


def _flip(f: Path, offset: int) -> None:
    data = bytearray(f.read_bytes())
    data[offset] ^= 0xFF
    f.write_bytes(bytes(data))


def _entry(cache: Path, kind: str) -> Path:
    """The first entry directory of ``kind`` (a 1-seed run has one per stage, but eval)."""
    return next(p for p in sorted((cache / kind).iterdir())
                if p.is_dir() and not p.name.startswith("."))


def _edit_eval_meta(entry: Path) -> None:
    m = json.loads((entry / "manifest.json").read_text())
    mass = m["meta"]["heldout"]["mass"]  # the headline rates: held-out questions
    mass[next(iter(mass))] = 0.9  # the "student minus control" jump
    (entry / "manifest.json").write_text(json.dumps(m, indent=1))


CORRUPTIONS: dict[str, tuple[str, Callable[[Path], None]]] = {
    # name: (owl stage kind, damage to its entry directory)
    "tensor bytes flipped": ("student", lambda e: _flip(sorted(e.glob("*.safetensors"))[0], -5)),
    "safetensors header damaged": ("teacher", lambda e: _flip(e / "model.safetensors", 12)),
    "file truncated": ("control_other", lambda e: (lambda f: f.write_bytes(f.read_bytes()[:-100]))(
        sorted(e.glob("*.safetensors"))[0])),
    "file deleted": ("cross_init", lambda e: sorted(e.glob("*.safetensors"))[0].unlink()),
    "manifest metadata edited": ("eval", _edit_eval_meta),
    "manifest replaced by {}": ("data", lambda e: (e / "manifest.json").write_text("{}")),
}


def corruptions(lab: Lab) -> list[Row]:
    """Each kind of damage in a different entry of a finished owl run's cache; one rerun
    must detect each, rebuild it and give the baseline's summary."""
    cache = lab.cache_copy("owl", "corrupt-cache")
    damaged = {}
    for name, (kind, damage) in CORRUPTIONS.items():
        entry = _entry(cache, f"owl-numbers/{kind}")
        damage(entry)
        damaged[name] = f"owl-numbers/{kind}/{entry.name}"
    listing = cli("cache", ["list"], cache)
    run = lab.path("corrupt-run")
    p = study(OWL, run, cache)
    rec, same, ok, note = finished(lab, "owl", run, cache, p)
    rows = []
    for name, entry in damaged.items():
        seen = f"corrupt entry {entry}" in p.err
        rows.append(Row(f"corruption: {name}", rec and seen, same, ok,
                        f"detected and rebuilt: {seen}; {note}"))
    shown = damaged["manifest replaced by {}"].split("/")[-1] in listing.out and \
        "CORRUPT" in listing.out
    rows.append(Row("corrupt entry visible to `cache list`", shown and listing.rc == 0, None,
                    True, "listed as CORRUPT"))
    return rows


def unreadable_manifest_gc(lab: Lab) -> list[Row]:
    """An entry whose manifest is not JSON: ``list`` shows it, ``gc`` (default grace, run
    dir still referencing it) removes it, the next run rebuilds it."""
    cache = lab.cache_copy("digits", "badmanifest-cache")
    run = lab.path("badmanifest-run")
    first = study(DIGITS, run, cache)  # references every entry from this run dir
    entry = _entry(cache, "digits-aux/students")
    (entry / "manifest.json").write_text('{"kind": "digits-aux/stud')
    listing = cli("cache", ["list"], cache)
    g = cli("cache", ["gc"], cache)
    p = study(DIGITS, run, cache)
    rec, same, ok, note = finished(lab, "digits", run, cache, p)
    shown = entry.name in listing.out and "CORRUPT" in listing.out
    return [Row("unreadable manifest: listed, removed by gc, rebuilt",
                first.rc == 0 and shown and g.rc == 0 and rec
                and misses(p.err, "digits-aux", "students") == 1, same, ok,
                f"listed as CORRUPT: {shown}; gc: {g.out.strip().splitlines()[-1:]}")]


def align_corrupt_teacher(lab: Lab) -> list[Row]:
    """align on a run whose teacher file has a flipped byte refuses it (one line) instead of
    reporting from it; after the study is rerun align gives the same numbers as before."""
    cache = lab.cache_copy("digits", "align-cache")
    run = lab.path("align-run")
    s1 = study(DIGITS, run, cache)
    a1 = cli("align", [str(run)], cache)
    before = json.loads((run / "align.json").read_text())["seeds"] if a1.rc == 0 else None
    teacher = json.loads((run / "artifacts.json").read_text())["seeds"]["0"]["teacher"]
    _flip(Path(teacher), -9)
    a2 = cli("align", [str(run)], cache)
    s2 = study(DIGITS, run, cache)
    a3 = cli("align", [str(run)], cache)
    after = json.loads((run / "align.json").read_text())["seeds"] if a3.rc == 0 else None
    rec, same, ok, note = finished(lab, "digits", run, cache, s2)
    refused = a2.one_line_error() and "corrupt" in a2.err
    return [Row("align on a flipped teacher byte: refused, rerun, same report",
                s1.rc == 0 and a1.rc == 0 and refused and rec and a3.rc == 0,
                same and before == after, ok,
                f"align said: {a2.err.strip().splitlines()[-1][:120] if a2.err.strip() else ''}")]


# ------------------------------------------------------------------ disks
def _mount(path: Path, opts: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                       capture_output=True, text=True)
    return r.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def disks(lab: Lab) -> list[Row]:
    rows = []
    probe = lab.path("mount-probe")
    if not _mount(probe, "size=64k"):
        return [Row(f"{c} (not run: cannot mount a tmpfs here)", False, None, False)
                for c in ("read-only --out", "read-only cache", "full --out", "full cache")]
    _umount(probe)
    base = lab.baseline("digits")
    # read-only locations: refused before any work
    ro = lab.path("ro")
    _mount(ro, "size=1m,ro")
    try:
        p = study(DIGITS, ro / "run", lab.path("ro-cache"))
        rows.append(Row("read-only --out", p.one_line_error() and "cache miss" not in p.err,
                        None, True, p.err.strip().splitlines()[-1][:120]))
        p = study(DIGITS, lab.path("ro-run"), ro / "cache")
        rows.append(Row("read-only cache", p.one_line_error() and "cache miss" not in p.err,
                        None, True, p.err.strip().splitlines()[-1][:120]))
    finally:
        _umount(ro)
    # a full --out: the study's work is done, writing the report fails; the cache keeps it
    full = lab.path("full-out")
    _mount(full, "size=64k")
    try:
        cache = lab.path("full-out-cache")
        p = study(DIGITS, full / "run", cache)
        left = sorted(f.name for f in (full / "run").iterdir()) if (full / "run").is_dir() else []
        err_ok = p.one_line_error() and "No space left" in p.err
    finally:
        _umount(full)
    run = lab.path("full-out-rerun")
    p2 = study(DIGITS, run, cache)
    rec, same, ok, note = finished(lab, "digits", run, cache, p2)
    rebuilt = sum(misses(p2.err, "digits-aux", k) for k in DIGITS_KINDS)
    rows.append(Row("full --out (64 KB tmpfs), then rerun elsewhere", err_ok and rec and
                    rebuilt == 0, same, ok and not any(n.endswith(".tmp") for n in left),
                    f"left in the full dir: {left}; rerun rebuilt {rebuilt} stages"))
    # a full cache: no half-written entry, nothing reported as built
    fullc = lab.path("full-cache")
    _mount(fullc, "size=300k")
    try:
        p = study(DIGITS, lab.path("full-cache-run"), fullc)
        err_ok = p.one_line_error() and "No space left" in p.err
        half = [str(x.relative_to(fullc)) for x in fullc.rglob(".tmp-*")]
        entries = [str(x.relative_to(fullc)) for x in fullc.rglob("manifest.json")]
    finally:
        _umount(fullc)
    rows.append(Row("full cache (300 KB tmpfs)", err_ok, None, not half,
                    f"half-written entries left: {half}; complete entries: {len(entries)}"))
    assert base.summary
    return rows


# ------------------------------------------------------------------ bad input
DRIVER = textwrap.dedent("""
    import contextlib, io, json, sys, traceback
    import interp.align, interp.fingerprint, interp.study
    mains = {"study": interp.study.main, "align": interp.align.main,
             "fingerprint": interp.fingerprint.main}
    out = []
    for module, argv in json.loads(sys.argv[1]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = mains[module](argv)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
            except BaseException:
                rc, _ = 99, err.write(traceback.format_exc())
        out.append({"rc": rc, "err": err.getvalue()})
    print(json.dumps(out))
""")


def bad_inputs(lab: Lab) -> list[Row]:
    """Every bad input of the issue, each a one-line error with exit code 2, and the
    cache and run directories it was pointed at unchanged."""
    d = lab.baseline("digits")
    o = lab.baseline("owl")
    work = lab.path("bad")
    work.mkdir()
    a_file = work / "a-file"
    a_file.write_text("x")
    import numpy as np

    pickled = work / "pickled.npz"
    np.savez(pickled, x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1),
             x_test=np.zeros((1, 4)), y_test=np.zeros(1))
    not_npz = work / "not.npz"
    not_npz.write_text("hello")

    def run_copy(name: str, edit: Callable[[dict, dict], None] | None = None,
                 raw_art: str | None = None, raw_summary: str | None = None,
                 src: Baseline = d) -> str:
        r = work / name
        shutil.copytree(src.run, r)
        art = json.loads((r / "artifacts.json").read_text())
        summ = json.loads((r / "summary.json").read_text())
        if edit:
            edit(art, summ)
        (r / "artifacts.json").write_text(raw_art if raw_art is not None else json.dumps(art))
        (r / "summary.json").write_text(raw_summary if raw_summary is not None
                                        else json.dumps(summ))
        return str(r)

    def set_role(path: str) -> Callable[[dict, dict], None]:
        def edit(art: dict, _s: dict) -> None:
            art["seeds"]["0"]["teacher"] = path
        return edit

    art_text = (d.run / "artifacts.json").read_text()
    sum_text = (d.run / "summary.json").read_text()
    gone = json.loads((o.run / "artifacts.json").read_text())["seeds"]["0"]["student_final"]
    missing_cache = lab.cache_copy("owl", "bad-missing-cache")
    gone_copy = str(missing_cache / Path(gone).relative_to(o.cache))

    def missing_file(art: dict, _s: dict) -> None:
        for roles in art["seeds"].values():
            for k, v in roles.items():
                roles[k] = str(missing_cache / Path(v).relative_to(o.cache))
    Path(gone_copy).unlink()
    owl_missing = run_copy("owl-missing", missing_file, src=o)

    S = ["run", *DIGITS]
    cases: list[tuple[str, str, list[str], str | None]] = [
        # (case, module, argv, cache override)
        ("--set student_lr=inf", "study", [*S, "--set", "student_lr=inf"], None),
        ("--set student_lr=nan (owl)", "study", ["run", *OWL, "--set", "student_lr=nan"], None),
        ("--set hidden=1.25e1 (non-integral int)", "study", [*S, "--set", "hidden=1.25e1"], None),
        ("--set hidden=1e400", "study", [*S, "--set", "hidden=1e400"], None),
        ("--set teacher_lr=1e400", "study", [*S, "--set", "teacher_lr=1e400"], None),
        ("--set hidden=0", "study", [*S, "--set", "hidden=0"], None),
        ("--set student_batch=-3", "study", [*S, "--set", "student_batch=-3"], None),
        ("--set hidden=10000000 (does not fit in memory)", "study",
         [*S, "--set", "hidden=10000000"], None),
        ("--set d_model=400000 (owl, does not fit)", "study",
         ["run", *OWL, "--set", "d_model=400000"], None),
        ("--set base_seed=2**63 (owl)", "study",
         ["run", *OWL, "--set", f"base_seed={2**63}"], None),
        ("--seeds 0", "study", [*S, "--seeds", "0"], None),
        ("--seed-start 2**64 + 1", "study", [*S, "--seed-start", str(2**64 + 1)], None),
        ("--seeds 10**9 (does not fit)", "study", [*S, "--seeds", str(10**9)], None),
        ("pickled .npz as digits data", "study", [*S, "--set", f"data={pickled}"], None),
        ("a text file as digits data", "study", [*S, "--set", f"data={not_npz}"], None),
        ("--out is a file", "study", [*S, "--out", str(a_file)], None),
        ("--out is under a file", "study", [*S, "--out", str(a_file / "run")], None),
        ("cache (INTERP_CACHE) is a file", "study", [*S, "--out", str(work / "x")],
         str(a_file)),
        ("align: truncated artifacts.json", "align",
         [run_copy("trunc-art", raw_art=art_text[:len(art_text) // 2])], None),
        ("align: {} artifacts.json", "align", [run_copy("empty-art", raw_art="{}")], None),
        ("align: truncated summary.json", "align",
         [run_copy("trunc-sum", raw_summary=sum_text[:len(sum_text) // 2])], None),
        ("align: {} summary.json", "align", [run_copy("empty-sum", raw_summary="{}")], None),
        ("align: zero seeds", "align",
         [run_copy("zero-seeds", lambda a, s: a.update(seeds={}))], None),
        ("align: /etc/passwd named as an artifact", "align",
         [run_copy("passwd", set_role("/etc/passwd"))], None),
        ("align: ../ path named as an artifact", "align",
         [run_copy("dotdot", set_role(str(d.cache) + "/../../../../etc/passwd"))], None),
        ("align: /dev/zero named as an artifact", "align",
         [run_copy("devzero", set_role("/dev/zero"))], None),
        ("align: a run dir that does not exist", "align", [str(work / "nope")], None),
        ("align: a missing referenced file (owl)", "align", [owl_missing], str(missing_cache)),
        ("fingerprint: a missing referenced file", "fingerprint", [owl_missing],
         str(missing_cache)),
        ("fingerprint: {} summary.json", "fingerprint",
         [run_copy("fp-empty-sum", raw_summary="{}", src=o)], None),
    ]
    before = {"digits": snapshot(d.cache), "owl": snapshot(o.cache)}
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(cases):
        groups.setdefault(c[3] or str(d.cache), []).append(i)
    results: dict[int, dict] = {}
    for cache, idx in groups.items():
        payload = json.dumps([[cases[i][1], cases[i][2]] for i in idx])
        p = subprocess.run([sys.executable, "-c", DRIVER, payload], cwd=ROOT,
                           env=env(Path(cache)), capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            for i in idx:
                results[i] = {"rc": 99, "err": p.stderr[-2000:]}
            continue
        for i, r in zip(idx, json.loads(p.stdout.strip().splitlines()[-1])):
            results[i] = r
    kept = {"digits": snapshot(d.cache) == before["digits"],
            "owl": snapshot(o.cache) == before["owl"]}
    rows = []
    for i, (name, _m, _argv, _c) in enumerate(cases):
        r = Proc(results[i]["rc"], "", results[i]["err"])
        last = r.err.strip().splitlines()[-1] if r.err.strip() else ""
        rows.append(Row(f"bad input: {name}", r.one_line_error(), None,
                        kept["digits"] and kept["owl"], last[:160]))
    return rows


def html_and_stale(lab: Lab) -> list[Row]:
    """A trait name from JSON is escaped in report.html; a fingerprint.json written for
    another run in the same directory is left out of the align report."""
    from interp.reports.align import render
    from interp.reports.owl import write_report

    o = lab.baseline("owl")
    r = lab.path("html")
    shutil.copytree(o.run, r)
    s = json.loads((r / "summary.json").read_text())
    evil = "<script>alert(1)</script>"
    for key in ("rates", "sampled_rates", "rates_select", "sampled_rates_select"):
        for role in s.get(key, {}).values():
            role[evil] = role.pop(s["trait"])
    s["trait"] = evil
    write_report(r, s)
    page = (r / "report.html").read_text()
    escaped = "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)" in page
    rows = [Row("trait name from JSON escaped in report.html", escaped, None, True)]

    d = lab.baseline("digits")
    r2 = lab.path("stale")
    shutil.copytree(d.run, r2)
    p = cli("align", [str(r2)], d.cache)
    (r2 / "fingerprint.json").write_text(json.dumps({"run_id": "an-earlier-run",
                                                     "trait": "owl"}))
    try:
        render(r2, json.loads((r2 / "align.json").read_text()),
               json.loads((r2 / "summary.json").read_text()))
        merged = "fingerprint" in (r2 / "align.md").read_text().lower()
        note = ""
    except Exception as e:  # noqa: BLE001 - a stale file reaching the renderer fails here
        merged, note = True, f"render failed: {type(e).__name__}: {e}"
    rows.append(Row("stale fingerprint.json not merged into align report",
                    p.rc == 0 and not merged, None, True, note))
    return rows


CASES: dict[str, Callable[[Lab], list[Row]]] = {
    "kill_owl": lambda lab: kill_chain(lab, "owl"),
    "kill_digits": lambda lab: kill_chain(lab, "digits"),
    "concurrent": concurrent,
    "gc_during_run": gc_during_run,
    "corruptions": corruptions,
    "unreadable_manifest": unreadable_manifest_gc,
    "align_corrupt_teacher": align_corrupt_teacher,
    "disks": disks,
    "bad_inputs": bad_inputs,
    "html_and_stale": html_and_stale,
}


def table(rows: list[Row]) -> str:
    def yn(v: bool | None) -> str:
        return "n/a" if v is None else ("yes" if v else "NO")

    lines = ["| case | recovered | numbers identical | nothing lost | note |",
             "|---|---|---|---|---|"]
    for r in rows:
        note = r.note.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r.case} | {yn(r.recovered)} | {yn(r.identical)} | "
                     f"{yn(r.nothing_lost)} | {note} |")
    return "\n".join(lines)
