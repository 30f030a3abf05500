"""See and prune the artifact store: ``python -m interp.cache``.

    python -m interp.cache [--root DIR] list
    python -m interp.cache [--root DIR] info KEY      # KEY: a unique key prefix, or kind/key
    python -m interp.cache [--root DIR] gc [--dry-run]

The root is ``--root``, else ``$INTERP_CACHE``, else ./cache. An entry is live while a
refs file (written by ``run_study`` for its run directory) lists it and that run
directory still exists; ``gc`` removes every other entry, so deleting a run directory
is how you release what it used. Entries built before reference tracking existed are
listed by no refs file: check ``gc --dry-run`` first.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from interp.store import REFS, CorruptRefs, Entry, Store

log = logging.getLogger("interp.cache")

META_CHARS = 2000
STALE_TMP_S = 3600  # a temp dir this old with a free lock belongs to a killed writer


class CacheError(Exception):
    """Bad input or a state gc refuses to act on; reported as one line, exit code 2."""


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def date(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "?"


def to_json(obj: object) -> str:
    """JSON with one line per top-level key: a long list stays one line, not hundreds."""
    if not isinstance(obj, dict) or not obj:
        return json.dumps(obj)
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()) \
        + "\n}"


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


def _remove_entry(store: Store, entry: Entry) -> bool:
    lock = _try_lock(store, entry.kind, entry.key)
    if lock is None:
        log.warning("skipping %s: its lock is held by another process", entry.name)
        return False
    try:
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


def gc(store: Store, dry_run: bool = False) -> list[Entry]:
    """Remove every entry no existing run dir references; returns the removed entries.

    Refs files of run dirs that no longer exist are deleted first. With ``dry_run``
    nothing changes and the return value is what would be removed. Raises
    ``CorruptRefs`` on an unreadable refs file rather than treat its entries as dead."""
    live: set[str] = set()
    for refs in store.refs(strict=True):
        if Path(refs["run_dir"]).is_dir():
            live.update(refs["entries"])
            continue
        log.info("%s refs of deleted run dir %s", "would drop" if dry_run else "dropping",
                 refs["run_dir"])
        if not dry_run:
            refs["path"].unlink(missing_ok=True)
            refs["path"].with_suffix(".lock").unlink(missing_ok=True)
    removed = []
    for entry in store.entries():
        if entry.name in live:
            continue
        _ = entry.size  # cached now, while the files exist, for the report
        if dry_run or _remove_entry(store, entry):
            removed.append(entry)
    _stale_tmp_dirs(store, dry_run)
    return removed


# ------------------------------------------------------------------ commands
def cmd_list(store: Store) -> None:
    entries = store.entries()
    if not entries:
        print(f"no entries in {store.root}")
        return
    refs = referrers(store)
    rows = [(e.kind, e.key, human(e.size), date(e.manifest.get("created")),
             str(sum(Path(r).is_dir() for r in refs.get(e.name, []))))
            for e in entries]
    head = ("KIND", "KEY", "SIZE", "CREATED", "RUNS")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(c.rjust(w) if i in (2, 4) else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    total = sum(e.size for e in entries)
    print(f"total: {len(entries)} entries, {human(total)} in {store.root}")


def cmd_info(store: Store, query: str) -> None:
    e = find(store, query)
    meta = to_json(e.meta)
    if len(meta) > META_CHARS:
        meta = f"{meta[:META_CHARS]}\n... ({len(meta) - META_CHARS} more chars)"
    print(f"kind:    {e.kind}\nkey:     {e.key}\npath:    {e.path}\n"
          f"size:    {human(e.size)} ({e.size} bytes)\ncreated: {date(e.manifest.get('created'))}")
    print(f"config:  {to_json(e.manifest.get('config'))}")
    print(f"meta:    {meta}")
    print("files:")
    for f in sorted(p for p in e.path.rglob("*") if p.is_file()):
        print(f"  {str(f.relative_to(e.path)):32s} {human(f.stat().st_size):>9s}")
    runs = referrers(store).get(e.name, [])
    print("referenced by:" if runs else "referenced by: no run dir (gc will remove it)")
    for r in runs:
        print(f"  {r}" + ("" if Path(r).is_dir() else "  (deleted)"))


def cmd_gc(store: Store, dry_run: bool) -> None:
    total = len(store.entries())
    removed = gc(store, dry_run)
    verb = "would remove" if dry_run else "removed"
    for e in removed:
        print(f"{verb} {e.name} ({human(e.size)})")
    freed = sum(e.size for e in removed)
    print(f"{'would free' if dry_run else 'freed'} {human(freed)} ({freed} bytes) "
          f"in {len(removed)} entries; {total - len(removed)} kept")


def main(argv: list[str] | None = None) -> int:
    # --root is accepted before or after the subcommand
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default=argparse.SUPPRESS,
                        help="store root (default: $INTERP_CACHE or ./cache)")
    p = argparse.ArgumentParser(prog="python -m interp.cache", parents=[common],
                                description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", parents=[common], help="list entries with sizes and references")
    i = sub.add_parser("info", parents=[common], help="show one entry")
    i.add_argument("key", help="a unique key prefix, or kind/key")
    g = sub.add_parser("gc", parents=[common], help="remove entries no run dir references")
    g.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    store = Store(getattr(args, "root", None))
    try:
        if args.cmd == "list":
            cmd_list(store)
        elif args.cmd == "info":
            cmd_info(store, args.key)
        else:
            cmd_gc(store, args.dry_run)
    except (CacheError, CorruptRefs) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
