"""The artifact store: config-keyed, checksummed, atomically written cache entries.

An entry is a directory ``<root>/<kind>/<key>/`` holding safetensors files and a
``manifest.json`` (config, per-file sha256 and size, free-form metadata). The key
is a hash of the exact config, so a changed setting is a new entry. Entries are
built in a temporary directory and renamed into place, so a reader never sees a
half-written entry; builders of the same key take a file lock, so two processes
never build it twice or interleave their writes. Every read verifies checksums;
a corrupt or truncated entry is reported, removed and rebuilt.

The manifest is covered by its own checksum (``digest``: sha256 of the rest of the
manifest), so edited metadata, a ``{}`` manifest or one copied under another key is
corrupt like a flipped tensor byte. Reading a file verifies it: ``Entry.load`` and
``read_tensors`` read the bytes once, check size and sha256 against the manifest, and
deserialize those same bytes (no window between check and use).

Multi-stage studies resume for free: each finished stage is an entry, so a rerun
after an interruption hits the cache for every stage that had finished.

A ``Store`` remembers the entries it handed out (``touched``). Bound to a run directory
(``bind``), it records each entry in ``<root>/refs/`` (a reserved kind name) the moment
it is built or hit, while still holding the entry's lock; ``gc`` takes that lock and
re-reads the refs before it removes anything, so a stage a run has used is never
removed under it (see ``interp.storage.gc``).

Thread count: a stage's numbers depend on the number of intra-op threads torch uses
(float sums are reduced in a different order). Measured (``analyses/thread_determinism.py``,
owl-numbers tiny, 2 seeds, OMP_NUM_THREADS=1 then 2): 7 of 14 rate rows differ, e.g. the
control's trait mass 0.083943 vs 0.084657 (seed 0) and its sampled rate 0.0750 vs 0.0875;
the drift starts in pretraining (base_cross differs in the 7th digit) and grows through
sampling and distillation. So the thread count is part of every
entry's key (``threads`` in the manifest): a run never silently reuses numbers computed
under another thread count. Pinning one thread count instead would make numbers equal
across machines only in the easy case (the same CPU kind) and cost every multi-core
user speed; recording it is exact.

Reading artifacts named in a run directory: ``read_tensors(path)`` accepts only a file
of a verified entry of this store (after resolving links), so a path elsewhere
(``/etc/passwd``, ``../``, ``/dev/zero``) is refused with a one-line ``ArtifactError``.

Owns: ``Store``, ``Entry``, ``read_tensors``, atomic JSON/text writes, ``code_digest``
(what a stage puts in its key so that editing its code invalidates it). Imports only
``interp.errors`` from interp.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import inspect
import json
import logging
import os
import re
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Callable, Mapping
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file

from interp.errors import UsageError

log = logging.getLogger("interp.storage.store")

MANIFEST = "manifest.json"
REFS = "refs"
KEY_VERSION = 1  # part of every key: bump to invalidate every entry
FORMAT_VERSION = 2  # the manifest layout; 2 adds "digest" and "threads"
KEY_RE = re.compile(r"[0-9a-f]{20}")
NAME_RE = re.compile(r"[A-Za-z0-9_.+-]+")  # a file name inside an entry
Tensors = dict[str, torch.Tensor]


class CorruptEntry(Exception):
    """A cache entry whose files do not match its manifest."""


class NotCached(Exception):
    """A build was needed inside ``Store.cached_only()``."""


class CorruptRefs(Exception):
    """A refs file that cannot be read; gc refuses to guess what it protected."""


class ArtifactError(UsageError):
    """An artifact named in a run directory that cannot be read safely (outside the store,
    missing, corrupt); one line, naming the fix."""


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


def config_key(kind: str, config: Any, threads: int | None = None) -> str:
    """The key of (kind, config); store entries also cover the torch thread count."""
    body = {"kind": kind, "config": canonical(config), "v": KEY_VERSION}
    if threads is not None:
        body["threads"] = threads
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# the seconds spent in nested builds, one slot per build in progress (innermost last)
_BUILDS: list[float] = []


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest without its ``digest`` field (canonical JSON)."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def check_manifest(manifest: Any, kind: str, key: str) -> dict:
    """The manifest if it is well formed, verifies its digest and belongs at kind/key;
    else ``CorruptEntry`` naming what is wrong."""
    if not isinstance(manifest, dict):
        raise CorruptEntry(f"manifest is a {type(manifest).__name__}, not an object")
    missing = [k for k in ("kind", "key", "config", "files", "meta", "created", "format",
                           "threads", "digest") if k not in manifest]
    if missing:
        raise CorruptEntry(f"manifest lacks {', '.join(missing)}"
                           + (" (written before manifests had checksums)"
                              if manifest.get("format", 1) < FORMAT_VERSION else ""))
    if manifest["digest"] != manifest_digest(manifest):
        raise CorruptEntry("manifest fails its checksum (edited?)")
    if (manifest["kind"], manifest["key"]) != (kind, key):
        raise CorruptEntry(f"manifest is for {manifest['kind']}/{manifest['key']}")
    if config_key(kind, manifest["config"], manifest["threads"]) != key:
        raise CorruptEntry("manifest config does not hash to the entry's key")
    files = manifest["files"]
    if not isinstance(files, dict) or not all(
            isinstance(n, str) and NAME_RE.fullmatch(n) and isinstance(i, dict)
            and isinstance(i.get("sha256"), str) and isinstance(i.get("size"), int)
            for n, i in files.items()):
        raise CorruptEntry("manifest lists malformed files")
    return manifest


def read_manifest(path: Path, kind: str, key: str) -> dict:
    """The checked manifest of the entry at ``path``: a fresh top-level dict on every call,
    whose nested values (config, files, meta) are shared and must not be mutated. A
    manifest already parsed and checked in this process is neither parsed nor checked
    again while its file is unchanged (same inode, size and mtime): a student's manifest
    holds its recorder rows (about 0.5 MB of JSON), and a warm report reads each one many
    times. The memo holds the last ``_PARSED_MAX`` manifests."""
    manifest_path = path / MANIFEST
    stamp = _stamp(manifest_path)
    hit = _PARSED.get(stamp)
    if hit is not None and hit[0] == (kind, key):
        _PARSED.move_to_end(stamp)
        return dict(hit[1])
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptEntry(f"unreadable manifest: {e}") from e
    checked = check_manifest(manifest, kind, key)
    if stamp[1] is not None and stamp == _stamp(manifest_path):  # unchanged while read
        _PARSED[stamp] = ((kind, key), checked)
        while len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    return dict(checked)


def read_verified(path: Path, info: dict) -> bytes:
    """The bytes of a regular file if its size and sha256 match ``info``; else CorruptEntry.
    Reads at most size + 1 bytes, so a device or a huge file cannot hang the reader."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CorruptEntry(f"missing file {path.name}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CorruptEntry(f"{path.name} is not a regular file")
    if st.st_size != info["size"]:
        raise CorruptEntry(f"{path.name} is {st.st_size} bytes, manifest says {info['size']} "
                           "(truncated?)")
    with open(path, "rb") as f:
        data = f.read(info["size"] + 1)
    if len(data) != info["size"] or hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise CorruptEntry(f"{path.name} fails its sha256 checksum")
    return data


def threads() -> int:
    return torch.get_num_threads()


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
    problem: str | None = None  # set (and manifest {}) for a corrupt entry in a listing

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
        total = 0
        for f in self.path.rglob("*"):
            try:
                total += f.lstat().st_size if f.is_file() else 0
            except OSError:  # removed meanwhile
                pass
        return total

    @property
    def files(self) -> dict[str, Path]:
        return {name: self.path / f"{name}.safetensors" for name in self.manifest["files"]}

    def load(self, name: str = "tensors") -> Tensors:
        """The tensors of one file, verified against the manifest as they are read."""
        if name not in self.manifest["files"]:
            raise KeyError(f"entry {self.kind}/{self.key} has no file {name!r}; "
                           f"it has {sorted(self.manifest['files'])}")
        return load_bytes(read_verified(self.files[name], self.manifest["files"][name]))


class Store:
    """Config-keyed artifact store rooted at ``root`` (default ``$INTERP_CACHE`` or ./cache)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).resolve() if root is not None else default_root()
        self.hits = 0
        self.misses = 0
        # "kind/key" of every entry handed out, in first-use order (a dict as ordered set)
        self.touched: dict[str, None] = {}
        self.run_dir: Path | None = None  # set by bind(): refs are recorded as entries are used
        self._cached_only = False

    @contextlib.contextmanager
    def cached_only(self):
        """Inside, a miss raises ``NotCached`` instead of building (is everything there?)."""
        self._cached_only = True
        try:
            yield self
        finally:
            self._cached_only = False

    # ---------------------------------------------------------------- paths
    def key(self, kind: str, config: Any) -> str:
        """The entry key of (kind, config) under the current torch thread count."""
        return config_key(kind, config, threads())

    def entry_dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def _lock(self, kind: str, key: str) -> FileLock:
        (self.root / kind).mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / kind / f"{key}.lock"))

    # ---------------------------------------------------------------- read
    def _verify(self, kind: str, key: str) -> Entry:
        path = self.entry_dir(kind, key)
        manifest = read_manifest(path, kind, key)
        for name, info in manifest["files"].items():
            f = path / f"{name}.safetensors"
            if not f.exists():
                raise CorruptEntry(f"missing file {f.name}")
            if f.stat().st_size != info["size"]:
                raise CorruptEntry(f"{f.name} is {f.stat().st_size} bytes, manifest says "
                                   f"{info['size']} (truncated?)")
            _check_once(f, info["sha256"], partial(_check_sha, f, info["sha256"]))
        return Entry(kind, key, path, manifest)

    def _get_locked(self, kind: str, key: str) -> Entry | None:
        """The verified entry (caller holds its lock), or None; a corrupt one is removed."""
        if not self.entry_dir(kind, key).exists():
            return None
        try:
            entry = self._verify(kind, key)
        except CorruptEntry as e:
            log.warning("cache: corrupt entry %s/%s (%s); removing it so it is rebuilt",
                        kind, key, e)
            shutil.rmtree(self.entry_dir(kind, key), ignore_errors=True)
            return None
        self._touch(entry)  # under the lock, so gc (which takes it) sees the ref first
        return entry

    def get(self, kind: str, config: Any) -> Entry | None:
        """The verified entry for (kind, config), or None. A corrupt entry is removed."""
        key = self.key(kind, config)
        if not self.entry_dir(kind, key).exists():
            return None
        with self._lock(kind, key):
            return self._get_locked(kind, key)

    # ---------------------------------------------------------------- write
    def put(self, kind: str, config: Any, files: Mapping[str, Tensors],
            meta: dict | None = None, build_seconds: float | None = None) -> Entry:
        """Write an entry atomically: build it in a temp dir, then rename into place.
        ``build_seconds`` (what computing it cost, without the entries its build read or
        built) goes into the manifest for the cold-start profile (``benchmarks.profile``)."""
        n_threads = threads()
        key = config_key(kind, config, n_threads)
        final = self.entry_dir(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            info = {}
            for name, tensors in files.items():
                if not NAME_RE.fullmatch(name):
                    raise ValueError(f"bad file name {name!r} for an entry")
                f = tmp / f"{name}.safetensors"
                save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(f))
                info[name] = {"sha256": sha256_file(f), "size": f.stat().st_size}
            manifest = {"kind": kind, "key": key, "config": canonical(config), "files": info,
                        "meta": canonical(meta or {}), "created": time.time(),
                        "format": FORMAT_VERSION, "threads": n_threads}
            if build_seconds is not None:
                manifest["build_seconds"] = round(build_seconds, 3)
            # the digest is of the JSON as it will be read back (floats round-trip exactly)
            manifest = json.loads(json.dumps(manifest))
            manifest["digest"] = manifest_digest(manifest)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
            if final.exists():  # a stale (corrupt) entry; a valid one is never overwritten
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        entry = self._verify(kind, key)
        self._touch(entry)
        return entry

    def get_or_build(self, kind: str, config: Any,
                     build: Callable[[], tuple[Mapping[str, Tensors], dict]]) -> Entry:
        """The cached entry, or run ``build() -> (files, meta)`` under a lock and store it."""
        key = self.key(kind, config)
        with self._lock(kind, key):
            # holding the lock, any temp dir for this key is left over from a killed writer
            for stale in self.entry_dir(kind, key).parent.glob(f".tmp-{key}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            entry = self._get_locked(kind, key)  # another process may have built it
            if entry is not None:
                self.hits += 1
                log.info("cache hit  %s/%s", kind, key)
                return entry
            if self._cached_only:
                raise NotCached(f"{kind}/{key}")
            self.misses += 1
            log.info("cache miss %s/%s: building", kind, key)
            t0 = time.perf_counter()
            _BUILDS.append(0.0)
            try:
                files, meta = build()
            finally:
                nested = _BUILDS.pop()
            total = time.perf_counter() - t0
            if _BUILDS:  # the enclosing build's own time excludes this one
                _BUILDS[-1] += total
            return self.put(kind, config, files, meta, build_seconds=total - nested)

    def get_or_build_group(self, members: list[tuple[str, Any]],
                           build: Callable[[], list[tuple[Mapping[str, Tensors], dict]]]) \
            -> list[Entry]:
        """Entries computed together (models trained as one stack): ``build()`` returns every
        member's (files, meta). The first member's build runs it and stores the others that
        are missing; a member missing later (an interrupted run) reruns the whole build,
        which is deterministic, and keeps its own part. Each member's config must name the
        group (the numbers of a stacked model depend on its stack)."""
        built: list = []

        def part(i: int):
            if not built:
                built.extend(build())
            if i == 0:
                for (kind, config), (files, meta) in zip(members[1:], built[1:]):
                    if self.get(kind, config) is None:
                        self.put(kind, config, files, meta, build_seconds=0.0)
            return built[i]

        return [self.get_or_build(kind, config, lambda i=i: part(i))
                for i, (kind, config) in enumerate(members)]

    # ---------------------------------------------------------------- artifacts by path
    def locate(self, path: str | Path) -> tuple[Entry, str]:
        """The entry holding the artifact file at ``path`` (manifest verified) and the
        file's name in it. Anything that is not a ``.safetensors`` file of an entry of
        this store, after resolving links, is refused with ``ArtifactError``."""
        raw = Path(path)
        real = Path(os.path.realpath(self.root / raw))  # root / an absolute path = the path
        try:
            rel = real.relative_to(self.root)
        except ValueError:
            raise ArtifactError(
                f"refusing to read {str(path)!r}: it is outside the artifact store {self.root} "
                "(artifacts.json must name files in the store; if the run used another "
                "store, set INTERP_CACHE to it)") from None
        parts = rel.parts
        if (len(parts) < 3 or parts[0] == REFS or not KEY_RE.fullmatch(parts[-2])
                or not parts[-1].endswith(".safetensors")
                or any(p.startswith(".") for p in parts)):
            raise ArtifactError(f"refusing to read {str(path)!r}: it is not a tensor file of "
                                f"an entry in the artifact store {self.root}")
        kind, key, name = "/".join(parts[:-2]), parts[-2], parts[-1][:-len(".safetensors")]
        fix = ("rerun the study that wrote this run directory (with the same command): the "
               "cache rebuilds what is missing or corrupt")
        if not self.entry_dir(kind, key).is_dir():
            raise ArtifactError(f"artifact {str(path)!r} is missing: its entry {kind}/{key} "
                                f"is not in the store (removed by gc?); {fix}")
        try:
            manifest = read_manifest(self.entry_dir(kind, key), kind, key)
        except CorruptEntry as e:
            raise ArtifactError(f"artifact {str(path)!r} is in a corrupt entry ({e}); "
                                f"{fix}") from None
        if name not in manifest["files"]:
            raise ArtifactError(f"artifact {str(path)!r} is not listed in its entry's "
                                f"manifest; {fix}")
        entry = Entry(kind, key, self.entry_dir(kind, key), manifest)
        self._touch(entry)
        return entry, name

    def read(self, path: str | Path) -> Tensors:
        """The verified tensors of the artifact file at ``path`` (see ``locate``)."""
        entry, name = self.locate(path)
        try:
            return entry.load(name)
        except CorruptEntry as e:
            raise ArtifactError(f"artifact {str(path)!r} is corrupt ({e}); rerun the study "
                                "that wrote this run directory (with the same command): the "
                                "cache rebuilds it") from None

    def file_sha(self, path: str | Path) -> str:
        """The verified content hash of the artifact at ``path`` (read and checked)."""
        entry, name = self.locate(path)
        sha = entry.manifest["files"][name]["sha256"]
        _check_once(entry.path / f"{name}.safetensors", sha, lambda: self.read(path))
        return sha

    # ---------------------------------------------------------------- listing
    def entry_dirs(self) -> list[tuple[str, str, Path]]:
        """(kind, key, path) of every entry directory (a 20-hex-digit name outside refs/
        and temp dirs), whether or not its manifest is readable."""
        out = []
        if not self.root.is_dir():
            return out
        for dirpath, dirnames, _ in os.walk(self.root):
            here = Path(dirpath)
            rel = here.relative_to(self.root)
            keep = []
            for d in sorted(dirnames):
                if d.startswith(".") or (rel == Path(".") and d == REFS):
                    continue
                if KEY_RE.fullmatch(d) and rel != Path("."):
                    out.append((rel.as_posix(), d, here / d))
                else:
                    keep.append(d)
            dirnames[:] = keep  # do not descend into entries
        return sorted(out)

    def entries(self) -> list[Entry]:
        """Every entry, its manifest checked (not its files); a corrupt one has ``problem``
        set and an empty manifest, so ``list`` shows it and ``gc`` can remove it."""
        out = []
        for kind, key, path in self.entry_dirs():
            try:
                out.append(Entry(kind, key, path, read_manifest(path, kind, key)))
            except CorruptEntry as e:
                if path.is_dir():  # not removed meanwhile
                    out.append(Entry(kind, key, path, {}, problem=str(e)))
        return out

    def remove(self, entry: Entry) -> None:
        shutil.rmtree(entry.path, ignore_errors=True)

    # ---------------------------------------------------------------- references
    def refs_path(self, run_dir: Path) -> Path:
        digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]
        return self.root / REFS / f"{digest}.json"

    def bind(self, run_dir: Path) -> None:
        """From now on, record every entry this store hands out in ``run_dir``'s refs file
        as it is handed out (status "running" until ``finish``)."""
        self.run_dir = Path(run_dir).resolve()
        self.write_refs(self.run_dir, status="running")

    def finish(self) -> None:
        """Mark the bound run finished (its refs file stays: the run dir still uses them)."""
        if self.run_dir is not None:
            self.write_refs(self.run_dir, status="finished")

    def _touch(self, entry: Entry) -> None:
        if entry.name in self.touched:
            return
        self.touched[entry.name] = None
        if self.run_dir is not None:
            self.write_refs(self.run_dir)

    def write_refs(self, run_dir: Path, status: str | None = None) -> Path:
        """Record that ``run_dir`` uses the ``touched`` entries, merged with what the refs
        file already lists (earlier attempts of a resumed run); returns the refs file."""
        path = self.refs_path(run_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        # the lock makes read-merge-write safe against another process writing the same file
        with FileLock(str(path.with_suffix(".lock"))):
            entries = set(self.touched)
            old: dict = {}
            if path.exists():
                try:
                    old = _read_refs(path)
                    entries |= set(old["entries"])
                except CorruptRefs as e:
                    log.warning("cache: %s; overwriting it", e)
            write_json(path, {"run_dir": str(Path(run_dir).resolve()),
                              "entries": sorted(entries), "updated": time.time(),
                              "status": status or old.get("status", "finished"),
                              "pid": os.getpid(), "host": socket.gethostname()})
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


_VERIFIED: dict[tuple, str] = {}  # (path, inode, size, mtime) -> sha256 checked this process
# manifest (path, inode, size, mtime) -> ((kind, key), checked manifest), least recent first
_PARSED: collections.OrderedDict[tuple, tuple[tuple, dict]] = collections.OrderedDict()
_PARSED_MAX = 256


def _check_sha(path: Path, sha: str) -> None:
    if sha256_file(path) != sha:
        raise CorruptEntry(f"{path.name} fails its sha256 checksum")


def _check_once(path: Path, sha: str, check: Callable[[], object]) -> None:
    """``check()`` (which raises on a mismatch) unless this process already checked the file
    at ``path`` against ``sha`` while it was unchanged (same inode, size and mtime)."""
    stamp = _stamp(path)
    if _VERIFIED.get(stamp) != sha:
        check()
        _VERIFIED[stamp] = sha


def _stamp(path: Path) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return (str(path), None)
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)



def _read_refs(path: Path) -> dict:
    try:
        refs = json.loads(path.read_text())
        if not (isinstance(refs["run_dir"], str) and isinstance(refs["entries"], list)):
            raise TypeError("run_dir or entries has the wrong type")
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise CorruptRefs(f"unreadable refs file {path}: {e}") from e
    return refs


def read_tensors(path: str | Path, store: Store | None = None) -> Tensors:
    """The tensors of a safetensors artifact named in a run directory's ``artifacts.json``,
    verified against its store entry; any other path is refused (``ArtifactError``)."""
    return (store or Store()).read(path)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temp file beside ``path`` and rename it in; on failure (a full disk)
    the temp file is removed and ``path`` is as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_state_dict(path: Path, state: Tensors) -> None:
    """Atomic safetensors write outside the store (run directories)."""
    _atomic_write(path, lambda tmp: save_file(
        {k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp)))


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write: a reader sees the old file or the new one, never half of one."""
    text = json.dumps(canonical(obj), indent=2)
    _atomic_write(path, lambda tmp: tmp.write_text(text))


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(text))


# ------------------------------------------------------------------ code-aware keys
_STARTED = time.time()  # when this process imported the store (about when it loaded interp)


def source_of(obj: Any) -> str:
    """The source text a code digest hashes (``inspect.getsource``; one place to change it).

    ``inspect`` reads the file on disk, not the code this process loaded: a file edited
    after the process started would give keys that do not match the running code (an edit
    mid-run once rebuilt a base with the old code under a new key). Refused instead."""
    path = inspect.getsourcefile(obj)
    if path and os.stat(path).st_mtime > _STARTED:
        raise UsageError(f"{path} changed after this process started, so the store keys "
                         "would not describe the code that is running; rerun the command")
    if obj not in _SOURCES:  # unchanged since start (checked above): read it once
        _SOURCES[obj] = inspect.getsource(obj)
    return _SOURCES[obj]


_SOURCES: dict[Any, str] = {}


def code_digest(*objs: Any) -> str:
    """A hash of the source of the functions and classes that compute a store entry.

    A stage puts ``"code": code_digest(builder, helper, ...)`` in its key, listing the code
    it depends on, so editing any of them makes a new key for that stage (and, through the
    keys downstream stages hold, for those) while other stages keep theirs."""
    h = hashlib.sha256()
    for obj in objs:
        name = (obj.__name__ if inspect.ismodule(obj)
                else f"{obj.__module__}.{obj.__qualname__}")
        h.update(f"{name}\n".encode())
        h.update(source_of(obj).encode())
    return h.hexdigest()[:16]


def module_closure(*roots: str, package: str = "interp") -> list[str]:
    """The modules of ``package`` that ``roots`` import, directly or through each other
    (every ``import`` statement in their source, function-level ones included), sorted: the
    code a whole-analysis cache entry depends on, the same whichever entry point imported
    what (it reads the files, not ``sys.modules``)."""
    import ast
    import importlib.util

    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:  # "from module import function": not a module
            continue
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        seen.add(name)
        tree = ast.parse(Path(spec.origin).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            todo += [n for n in names if n == package or n.startswith(package + ".")]
    return sorted(seen)
