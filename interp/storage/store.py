"""The artifact store: config-keyed, checksummed, atomically written cache entries.

An entry is a directory ``<root>/<kind>/<key>/`` holding safetensors files and a
``manifest.json`` (config, per-file sha256 and size, free-form metadata). The key
is a hash of the exact config, so a changed setting is a new entry. Entries are
built in a temporary directory and renamed into place, so a reader never sees a
half-written entry; builders of the same key take a file lock, so two processes
never build it twice or interleave their writes. Every read verifies checksums;
a corrupt or truncated entry is reported, removed and rebuilt.

Multi-stage studies resume for free: each finished stage is an entry, so a rerun
after an interruption hits the cache for every stage that had finished.

A ``Store`` remembers the entries it handed out (``touched``); ``write_refs(run_dir)``
records them in ``<root>/refs/`` (a reserved kind name), so ``python -m interp.cache gc``
can tell what some run still uses from garbage.

Owns: ``Store``, ``Entry``, keys, atomic writers, ``read_tensors``. Must not import anything
from interp outside ``interp.storage`` and ``interp.errors``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file

log = logging.getLogger("interp.storage.store")

MANIFEST = "manifest.json"
REFS = "refs"
FORMAT_VERSION = 1
Tensors = dict[str, torch.Tensor]


class CorruptEntry(Exception):
    """A cache entry whose files do not match its manifest."""


class CorruptRefs(Exception):
    """A refs file that cannot be read; gc refuses to guess what it protected."""


def default_root() -> Path:
    return Path(os.environ.get("INTERP_CACHE", "cache")).resolve()


def canonical(obj: Any) -> Any:
    """A JSON-able, order-stable view of a config (dataclasses, paths, tuples)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return canonical(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return float(repr(obj))  # repr round-trips; keeps 1e-3 and 0.001 the same key
    return obj


def config_key(kind: str, config: Any) -> str:
    blob = json.dumps({"kind": kind, "config": canonical(config), "v": FORMAT_VERSION},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclasses.dataclass
class Entry:
    """A verified entry on disk. ``files`` maps a name to its safetensors path."""

    kind: str
    key: str
    path: Path
    manifest: dict

    @property
    def meta(self) -> dict:
        return self.manifest.get("meta", {})

    @property
    def name(self) -> str:
        """``kind/key``, the form used in ``Store.touched`` and refs files."""
        return f"{self.kind}/{self.key}"

    @cached_property
    def size(self) -> int:
        """Total bytes in the entry dir; cached (entries are immutable), so gc can report
        the size of an entry it removed."""
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    @property
    def files(self) -> dict[str, Path]:
        return {name: self.path / f"{name}.safetensors" for name in self.manifest["files"]}

    def load(self, name: str = "tensors") -> Tensors:
        if name not in self.manifest["files"]:
            raise KeyError(f"entry {self.kind}/{self.key} has no file {name!r}; "
                           f"it has {sorted(self.manifest['files'])}")
        return load_file(str(self.files[name]))


class Store:
    """Config-keyed artifact store rooted at ``root`` (default ``$INTERP_CACHE`` or ./cache)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).resolve() if root is not None else default_root()
        self.hits = 0
        self.misses = 0
        # "kind/key" of every entry handed out, in first-use order (a dict as ordered set)
        self.touched: dict[str, None] = {}

    # ---------------------------------------------------------------- paths
    def entry_dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def _lock(self, kind: str, key: str) -> FileLock:
        (self.root / kind).mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / kind / f"{key}.lock"))

    # ---------------------------------------------------------------- read
    def _verify(self, kind: str, key: str) -> Entry:
        path = self.entry_dir(kind, key)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CorruptEntry(f"unreadable manifest: {e}") from e
        for name, info in manifest.get("files", {}).items():
            f = path / f"{name}.safetensors"
            if not f.exists():
                raise CorruptEntry(f"missing file {f.name}")
            if f.stat().st_size != info["size"]:
                raise CorruptEntry(f"{f.name} is {f.stat().st_size} bytes, manifest says "
                                   f"{info['size']} (truncated?)")
            if sha256_file(f) != info["sha256"]:
                raise CorruptEntry(f"{f.name} fails its sha256 checksum")
        return Entry(kind, key, path, manifest)

    def get(self, kind: str, config: Any) -> Entry | None:
        """The verified entry for (kind, config), or None. A corrupt entry is removed."""
        key = config_key(kind, config)
        if not self.entry_dir(kind, key).exists():
            return None
        try:
            entry = self._verify(kind, key)
        except CorruptEntry as e:
            log.warning("cache: corrupt entry %s/%s (%s); removing it so it is rebuilt",
                        kind, key, e)
            shutil.rmtree(self.entry_dir(kind, key), ignore_errors=True)
            return None
        self.touched[entry.name] = None
        return entry

    # ---------------------------------------------------------------- write
    def put(self, kind: str, config: Any, files: Mapping[str, Tensors],
            meta: dict | None = None) -> Entry:
        """Write an entry atomically: build it in a temp dir, then rename into place."""
        key = config_key(kind, config)
        final = self.entry_dir(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            info = {}
            for name, tensors in files.items():
                f = tmp / f"{name}.safetensors"
                save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(f))
                info[name] = {"sha256": sha256_file(f), "size": f.stat().st_size}
            manifest = {"kind": kind, "key": key, "config": canonical(config), "files": info,
                        "meta": canonical(meta or {}), "created": time.time(),
                        "format": FORMAT_VERSION}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
            if final.exists():  # a stale (corrupt) entry; a valid one is never overwritten
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        entry = self._verify(kind, key)
        self.touched[entry.name] = None
        return entry

    def get_or_build(self, kind: str, config: Any,
                     build: Callable[[], tuple[Mapping[str, Tensors], dict]]) -> Entry:
        """The cached entry, or run ``build() -> (files, meta)`` under a lock and store it."""
        key = config_key(kind, config)
        entry = self.get(kind, config)
        if entry is not None:
            self.hits += 1
            log.info("cache hit  %s/%s", kind, key)
            return entry
        with self._lock(kind, key):
            # holding the lock, any temp dir for this key is left over from a killed writer
            for stale in self.entry_dir(kind, key).parent.glob(f".tmp-{key}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            entry = self.get(kind, config)  # another process may have built it meanwhile
            if entry is not None:
                self.hits += 1
                log.info("cache hit  %s/%s (built by another process)", kind, key)
                return entry
            self.misses += 1
            log.info("cache miss %s/%s: building", kind, key)
            files, meta = build()
            return self.put(kind, config, files, meta)

    # ---------------------------------------------------------------- listing
    def entries(self) -> list[Entry]:
        out = []
        if not self.root.exists():
            return out
        for manifest_path in sorted(self.root.rglob(MANIFEST)):
            path = manifest_path.parent
            parts = path.relative_to(self.root).parts
            # a half-written entry in a temp dir, or something under refs/, is no entry
            if parts[:1] == (REFS,) or any(p.startswith(".tmp-") for p in parts):
                continue
            try:
                manifest = json.loads(manifest_path.read_text())
                out.append(Entry(manifest["kind"], manifest["key"], path, manifest))
            except (OSError, json.JSONDecodeError, KeyError):
                continue
        return out

    def remove(self, entry: Entry) -> None:
        shutil.rmtree(entry.path, ignore_errors=True)

    # ---------------------------------------------------------------- references
    def refs_path(self, run_dir: Path) -> Path:
        digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]
        return self.root / REFS / f"{digest}.json"

    def write_refs(self, run_dir: Path) -> Path:
        """Record that ``run_dir`` uses the ``touched`` entries, merged with what the refs
        file already lists (earlier attempts of a resumed run); returns the refs file."""
        path = self.refs_path(run_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        # the lock makes read-merge-write safe against another process writing the same file
        with FileLock(str(path.with_suffix(".lock"))):
            entries = set(self.touched)
            if path.exists():
                try:
                    entries |= set(_read_refs(path)["entries"])
                except CorruptRefs as e:
                    log.warning("cache: %s; overwriting it", e)
            write_json(path, {"run_dir": str(Path(run_dir).resolve()),
                              "entries": sorted(entries), "updated": time.time()})
        return path

    def refs(self, strict: bool = False) -> list[dict]:
        """Every refs file's contents plus ``"path"``. An unreadable file is skipped with a
        warning; ``strict`` raises ``CorruptRefs`` (for gc, its entries must not look dead)."""
        out = []
        for path in sorted((self.root / REFS).glob("*.json")):
            try:
                out.append({**_read_refs(path), "path": path})
            except CorruptRefs as e:
                if strict:
                    raise
                log.warning("cache: skipping %s", e)
        return out


def _read_refs(path: Path) -> dict:
    try:
        refs = json.loads(path.read_text())
        if not (isinstance(refs["run_dir"], str) and isinstance(refs["entries"], list)):
            raise TypeError("run_dir or entries has the wrong type")
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise CorruptRefs(f"unreadable refs file {path}: {e}") from e
    return refs


def read_tensors(path: str | Path) -> Tensors:
    """The tensors of a safetensors artifact named in a run directory's ``artifacts.json``."""
    return load_file(str(path))


def save_state_dict(path: Path, state: Tensors) -> None:
    """Atomic safetensors write outside the store (run directories)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp))
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(canonical(obj), indent=2))
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------ code-aware keys
def source_of(obj: Any) -> str:
    """The source text a code digest hashes (``inspect.getsource``; one place to change it)."""
    return inspect.getsource(obj)


def code_digest(*objs: Any) -> str:
    """A hash of the source of the functions and classes that compute a store entry.

    A stage puts ``"code": code_digest(builder, helper, ...)`` in its key, listing the code
    it depends on, so editing any of them makes a new key for that stage (and, through the
    keys downstream stages hold, for those) while other stages keep theirs."""
    h = hashlib.sha256()
    for obj in objs:
        h.update(f"{obj.__module__}.{obj.__qualname__}\n".encode())
        h.update(source_of(obj).encode())
    return h.hexdigest()[:16]
