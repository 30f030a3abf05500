"""Run directories: reading their JSON safely, checking output locations, the run lock.

A run directory holds ``artifacts.json`` (paths of store files per seed and role),
``summary.json`` and reports. Everything here turns a damaged or unusable directory into
a one-line ``UsageError`` naming the fix, before any work starts.

Owns: ``read_json``, ``validate_artifacts``, ``validate_summary``, ``run_id``,
``check_writable_dir``, ``run_lock`` (and the clean-up of temp files a killed run left).
Must not import anything above ``interp.storage``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from interp.errors import UsageError

log = logging.getLogger("interp.storage.rundir")

RERUN = "rerun the study (python -m interp.study run ...) to rewrite it"
TMP_RE = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")  # write_json / write_text temp files
LOCK = ".run.lock"
MAX_JSON = 256 << 20  # no run writes JSON this large; refuse rather than read it


def read_json(path: Path) -> Any:
    """A run directory's JSON file, or a one-line ``UsageError`` (missing, not a regular
    file, not JSON)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path} is missing; pass a run directory written by "
                         "`python -m interp.study run`") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_JSON:
        raise UsageError(f"{path} is not a regular JSON file; {RERUN}")
    try:
        return json.loads(Path(path).read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path} is not valid JSON (truncated?): {e}; {RERUN}") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None


def _bad(run_dir: Path, name: str, what: str) -> UsageError:
    return UsageError(f"{Path(run_dir) / name} {what}; {RERUN}")


def validate_artifacts(run_dir: Path, art: Any) -> dict:
    """``artifacts.json``'s shape: study, model block and at least one seed, each mapping
    role names to file paths."""
    if not isinstance(art, dict):
        raise _bad(run_dir, "artifacts.json", f"is a JSON {type(art).__name__}, not an object")
    for k, tp in (("study", str), ("model", dict), ("seeds", dict)):
        if not isinstance(art.get(k), tp):
            raise _bad(run_dir, "artifacts.json", f"lacks {k!r} (or it has the wrong type)")
    if not isinstance(art["model"].get("type"), str):
        raise _bad(run_dir, "artifacts.json", "has no model type")
    if not art["seeds"]:
        raise _bad(run_dir, "artifacts.json", "lists no seeds")
    for seed, roles in art["seeds"].items():
        if not re.fullmatch(r"\d+", seed) or not isinstance(roles, dict) or not roles or \
                not all(isinstance(k, str) and isinstance(v, str) for k, v in roles.items()):
            raise _bad(run_dir, "artifacts.json", f"has a malformed entry for seed {seed!r}")
    return art


def validate_summary(run_dir: Path, summary: Any) -> dict:
    if not isinstance(summary, dict):
        raise _bad(run_dir, "summary.json", f"is a JSON {type(summary).__name__}, not an object")
    for k, tp in (("study", str), ("seeds", list), ("config", dict)):
        if not isinstance(summary.get(k), tp):
            raise _bad(run_dir, "summary.json", f"lacks {k!r} (or it has the wrong type)")
    if not summary["seeds"] or not all(isinstance(s, int) and not isinstance(s, bool)
                                       for s in summary["seeds"]):
        raise _bad(run_dir, "summary.json", "lists no seeds (or malformed ones)")
    return summary


def run_id(run_dir: Path) -> str:
    """Which run a directory holds now: a hash of its ``artifacts.json`` (the exact store
    entries it names). A report written for another run carries another id."""
    try:
        return hashlib.sha256((Path(run_dir) / "artifacts.json").read_bytes()).hexdigest()[:16]
    except OSError:
        return ""


def check_writable_dir(path: Path, what: str) -> None:
    """Create ``path`` if needed and prove a file can be written in it; else a one-line
    ``UsageError`` (a file, under a file, read-only, no space)."""
    path = Path(path)
    for parent in reversed([path, *path.parents]):
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == path else f"is under {parent}, which is a file"
            raise UsageError(f"{what} {path} {where}; pass a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"{what} {path} is not writable ({e.strerror}); pass a writable "
                         "directory") from None


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock (one writer of a run directory at a time) and, holding it,
    remove the temp files a killed writer left behind."""
    lock = FileLock(str(Path(run_dir) / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process writing %s", run_dir)
        lock.acquire()
    try:
        for f in Path(run_dir).iterdir():
            if TMP_RE.fullmatch(f.name) and f.is_file():
                log.info("removing %s, left by a killed run", f.name)
                f.unlink(missing_ok=True)
        yield
    finally:
        lock.release()
