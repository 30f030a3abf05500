"""Garbage collection and look-up over the artifact store.

An entry is live while a refs file (written for a run directory) lists it and that run
directory still exists; ``gc`` removes every other entry, so deleting a run directory is
how you release what it used. The CLI is ``python -m interp.cache``.

What keeps a running or interrupted run safe:

- a run records each entry in its refs file the moment it builds or reads it (while
  holding the entry's lock), not when it ends; an interrupted run's refs stay, so its
  finished stages are live until its run directory is deleted;
- the refs of a run whose directory is gone are kept while the process that wrote them
  ("status": "running", same host, pid alive) still runs;
- ``gc`` removes an entry only while holding its lock, and re-reads the refs files under
  that lock, so an entry a run started using after gc's first look is kept;
- an entry younger than the grace period (``GRACE_S``, ``gc --grace``) is never removed:
  it covers a process that builds entries without a run directory (a notebook) until it
  records them;
- an entry whose manifest does not verify is corrupt: it is removed whether referenced
  or not (the next run that needs it rebuilds it; reading it would fail).

Owns: ``gc``, ``find``, ``referrers``. Must not import anything above ``interp.storage``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from interp.storage.store import REFS, Entry, Store, _read_refs

log = logging.getLogger("interp.storage.gc")

STALE_TMP_S = 3600  # a temp dir this old with a free lock belongs to a killed writer
GRACE_S = 3600.0  # entries younger than this are never removed


class CacheError(Exception):
    """Bad input or a state gc refuses to act on; reported as one line, exit code 2."""


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def referrers(store: Store) -> dict[str, list[str]]:
    """``kind/key`` -> the run dirs whose refs file lists it (existing or not)."""
    out: dict[str, list[str]] = {}
    for refs in store.refs():
        for name in refs["entries"]:
            out.setdefault(name, []).append(refs["run_dir"])
    return out


def find(store: Store, query: str) -> Entry:
    """The one entry whose ``kind/key`` or key is ``query`` or starts with it."""
    if not query:
        raise CacheError("empty KEY")
    entries = store.entries()
    exact = [e for e in entries if query in (e.key, e.name)]
    matches = exact or [e for e in entries
                        if e.key.startswith(query) or e.name.startswith(query)]
    if not matches:
        raise CacheError(f"no entry matches {query!r} in {store.root}")
    if len(matches) > 1:
        shown = ", ".join(e.name for e in matches[:8])  # a long list would bury the hint
        more = f" and {len(matches) - 8} more" if len(matches) > 8 else ""
        raise CacheError(f"{query!r} is ambiguous: it matches {shown}{more}; give more of "
                         "the key")
    return matches[0]


def _try_lock(store: Store, kind: str, key: str) -> FileLock | None:
    """The entry's build lock, held, or None while some process holds it (a builder)."""
    lock = FileLock(str(store.root / kind / f"{key}.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running(refs: dict) -> bool:
    """Whether the process that wrote these refs still runs (same host, pid alive)."""
    return (refs.get("status") == "running" and refs.get("host") == socket.gethostname()
            and _pid_alive(refs.get("pid")))


class _Live:
    """The set of referenced entry names, re-read cheaply: a refs file is parsed again
    only when its size or mtime changed."""

    def __init__(self, store: Store):
        self.store = store
        self.cache: dict[Path, tuple[tuple, dict]] = {}

    def names(self) -> set[str]:
        live: set[str] = set()
        for path in sorted((self.store.root / REFS).glob("*.json")):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
            hit = self.cache.get(path)
            if hit is None or hit[0] != stamp:
                refs = _read_refs(path)
                self.cache[path] = hit = (stamp, refs)
            refs = hit[1]
            if Path(refs["run_dir"]).is_dir() or _running(refs):
                live.update(refs["entries"])
        return live


def _remove_entry(store: Store, entry: Entry, live: _Live | None = None) -> bool:
    lock = _try_lock(store, entry.kind, entry.key)
    if lock is None:
        log.warning("skipping %s: its lock is held by another process", entry.name)
        return False
    try:
        # under the lock no run can start using it; one that did meanwhile shows in refs
        if live is not None and entry.problem is None and entry.name in live.names():
            log.info("keeping %s: a run started using it", entry.name)
            return False
        store.remove(entry)
        for tmp in entry.path.parent.glob(f".tmp-{entry.key}-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        Path(lock.lock_file).unlink(missing_ok=True)
    finally:
        lock.release()
    return True


def _stale_tmp_dirs(store: Store, dry_run: bool) -> None:
    """Temp dirs of killed writers whose entry never appeared."""
    for tmp in store.root.rglob(".tmp-*"):
        rel = tmp.relative_to(store.root)
        if not tmp.is_dir() or rel.parts[0] == REFS:
            continue
        key = tmp.name[len(".tmp-"):-9]  # .tmp-<key>-<8 hex>
        if (tmp.parent / key).exists() or time.time() - tmp.stat().st_mtime < STALE_TMP_S:
            continue
        size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        if dry_run:
            log.info("would remove leftover temp dir %s (%s)", rel, human(size))
            continue
        lock = _try_lock(store, str(rel.parent), key)
        if lock is not None:
            try:
                shutil.rmtree(tmp, ignore_errors=True)
                Path(lock.lock_file).unlink(missing_ok=True)
            finally:
                lock.release()
            log.info("removed leftover temp dir %s (%s)", rel, human(size))


def gc(store: Store, dry_run: bool = False, grace: float = GRACE_S) -> list[Entry]:
    """Remove every entry no existing run dir references and every corrupt entry; returns
    the removed entries. Entries younger than ``grace`` seconds are kept (see the module
    docstring for what else keeps an entry).

    Refs files of run dirs that no longer exist (and whose writer is not running) are
    deleted first. With ``dry_run`` nothing changes and the return value is what would
    be removed. Raises ``CorruptRefs`` on an unreadable refs file rather than treat its
    entries as dead."""
    if grace < 0 or grace != grace:
        raise CacheError(f"--grace must be a non-negative number of seconds, got {grace}")
    for refs in store.refs(strict=True):
        if Path(refs["run_dir"]).is_dir() or _running(refs):
            continue
        log.info("%s refs of deleted run dir %s", "would drop" if dry_run else "dropping",
                 refs["run_dir"])
        if not dry_run:
            refs["path"].unlink(missing_ok=True)
            refs["path"].with_suffix(".lock").unlink(missing_ok=True)
    live = _Live(store)
    names = live.names()
    removed = []
    now = time.time()
    for entry in store.entries():
        if entry.problem is None and (entry.name in names
                                      or now - entry.manifest["created"] < grace):
            continue
        if entry.problem is not None:
            log.info("%s corrupt entry %s (%s)", "would remove" if dry_run else "removing",
                     entry.name, entry.problem)
        _ = entry.size  # cached now, while the files exist, for the report
        if dry_run or _remove_entry(store, entry, live):
            removed.append(entry)
    _stale_tmp_dirs(store, dry_run)
    return removed
