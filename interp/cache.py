"""See and prune the artifact store: ``python -m interp.cache``.

    python -m interp.cache [--root DIR] list
    python -m interp.cache [--root DIR] info KEY      # KEY: a unique key prefix, or kind/key
    python -m interp.cache [--root DIR] gc [--dry-run] [--grace SECONDS]

The root is ``--root``, else ``$INTERP_CACHE``, else ./cache. An entry is live while a
refs file (written by ``run_study`` for its run directory as each stage is built or
used) lists it and that run directory still exists; ``gc`` removes every other entry
older than the grace period (default one hour) and every corrupt entry, so deleting a
run directory is how you release what it used. ``list`` marks a corrupt entry (its
manifest does not verify) with CORRUPT. Entries built before reference tracking existed
are listed by no refs file: check ``gc --dry-run`` first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from interp.cli import run_cli, setup_logging
from interp.storage.gc import GRACE_S, CacheError, find, gc, human, referrers
from interp.storage.store import CorruptRefs, Store

META_CHARS = 2000


def date(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "?"


def to_json(obj: object) -> str:
    """JSON with one line per top-level key: a long list stays one line, not hundreds."""
    if not isinstance(obj, dict) or not obj:
        return json.dumps(obj)
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items()) \
        + "\n}"


def cmd_list(store: Store) -> None:
    entries = store.entries()
    if not entries:
        print(f"no entries in {store.root}")
        return
    refs = referrers(store)
    rows = [(e.kind, e.key, human(e.size),
             date(e.manifest.get("created")) if e.problem is None else "CORRUPT",
             str(sum(Path(r).is_dir() for r in refs.get(e.name, []))))
            for e in entries]
    head = ("KIND", "KEY", "SIZE", "CREATED", "RUNS")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(c.rjust(w) if i in (2, 4) else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    total = sum(e.size for e in entries)
    bad = [e for e in entries if e.problem is not None]
    for e in bad:
        print(f"corrupt: {e.name}: {e.problem} (gc removes it; a run that needs it rebuilds it)")
    print(f"total: {len(entries)} entries, {human(total)} in {store.root}"
          + (f"; {len(bad)} corrupt" if bad else ""))


def cmd_info(store: Store, query: str) -> None:
    e = find(store, query)
    if e.problem is not None:
        print(f"kind:    {e.kind}\nkey:     {e.key}\npath:    {e.path}\n"
              f"CORRUPT: {e.problem} (gc removes it; a run that needs it rebuilds it)")
        return
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


def cmd_gc(store: Store, dry_run: bool, grace: float) -> None:
    total = len(store.entries())
    removed = gc(store, dry_run, grace)
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
    g.add_argument("--grace", type=float, default=GRACE_S,
                   help=f"keep entries younger than this many seconds (default {GRACE_S:.0f})")
    args = p.parse_args(argv)
    setup_logging("%(message)s")
    store = Store(getattr(args, "root", None))
    commands = {"list": lambda: cmd_list(store), "info": lambda: cmd_info(store, args.key),
                "gc": lambda: cmd_gc(store, args.dry_run, args.grace)}
    return run_cli(commands[args.cmd], errors=(CacheError, CorruptRefs))


if __name__ == "__main__":
    sys.exit(main())
