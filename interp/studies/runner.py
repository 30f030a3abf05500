"""Running a registered study: ``--set`` parsing, presets, the run directory, refs.

A study is a config dataclass plus a ``run(config, seeds, out, store) -> summary`` function.
Bad input (unknown study, unknown key, invalid value) is a ``UsageError`` naming the valid
choices; the CLI (``python -m interp.study``) prints it on one line. Everything that can
be checked is checked before any work: the config (its ``__post_init__``), the seeds, the
memory estimate, the output directory and the cache (both must be writable directories).

While a study runs it holds the run directory's lock (a second run into the same
directory waits, then hits the cache), removes temp files a killed run left there, and
records each stage in the cache's refs as it is built or used (``Store.bind``), so
``python -m interp.cache gc`` never removes a stage of a running or interrupted run.

Owns: turning (name, seeds, overrides) into a finished run directory. Must not import:
analysis, reports (a study writes its own report), the CLIs.
"""

from __future__ import annotations

import dataclasses
import decimal
import math
import types
import typing
from pathlib import Path
from typing import Any

from interp.errors import UsageError
from interp.storage.rundir import (
    check_writable_dir,
    read_json,
    run_lock,
    validate_artifacts,
    validate_summary,
)
from interp.storage.store import Store, config_key
from interp.studies.registry import Study, get_study
from interp.validation import MAX_SEED, check_memory


# ------------------------------------------------------------------ --set parsing
def _parse_value(key: str, raw: str, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        for c in choices:
            if str(c) == raw:
                return c
        raise UsageError(f"invalid value {raw!r} for {key}; valid values: "
                         f"{', '.join(map(str, choices))}")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw.lower() in ("none", "null", ""):
            return None
        return _parse_value(key, raw, args[0])
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        return tuple(_parse_value(key, r, inner) for r in raw.split(",") if r)
    if tp is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"invalid value {raw!r} for {key}; expected true or false")
    if tp is int:
        whole = f"invalid value {raw!r} for {key}; expected int (a whole number)"
        try:
            d = decimal.Decimal(raw)
        except decimal.InvalidOperation:
            raise UsageError(whole) from None
        if not d.is_finite() or d != d.to_integral_value() or abs(d) >= 10**30:
            raise UsageError(whole)
        return int(d)
    if tp is float:
        try:
            v = float(raw)
        except ValueError:
            raise UsageError(f"invalid value {raw!r} for {key}; expected a number") from None
        if not math.isfinite(v):
            raise UsageError(f"invalid value {raw!r} for {key}; expected a finite number")
        return v
    return raw


def apply_overrides(config: Any, assignments: list[str]) -> Any:
    """Return ``config`` with ``key=value`` assignments applied and validated."""
    hints = typing.get_type_hints(type(config))
    names = [f.name for f in dataclasses.fields(config)]
    changes = {}
    for a in assignments:
        if "=" not in a:
            raise UsageError(f"--set expects key=value, got {a!r}")
        key, raw = a.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in names:
            raise UsageError(f"unknown setting {key!r}; valid settings: {', '.join(names)}")
        changes[key] = _parse_value(key, raw.strip(), hints[key])
    try:
        return dataclasses.replace(config, **changes)  # validated by __post_init__
    except ValueError as e:
        raise UsageError(str(e)) from None


def make_config(study: Study, preset: str | None, assignments: list[str]) -> Any:
    config = study.config_cls()
    if preset:
        if preset not in study.presets:
            raise UsageError(f"unknown preset {preset!r} for {study.name}; valid presets: "
                             f"{', '.join(sorted(study.presets)) or '(none)'}")
        try:
            config = dataclasses.replace(config, **study.presets[preset])
        except ValueError as e:
            raise UsageError(str(e)) from None
    return apply_overrides(config, assignments)


def default_out(study: Study, config: Any, seeds: list[int]) -> Path:
    return Path("runs") / f"{study.name}-{config_key(study.name, [config, seeds])[:8]}"


def run_study(name: str, seeds: int | None = None, seed_start: int = 0,
              out: str | Path | None = None, sets: list[str] | None = None,
              preset: str | None = None, store: Store | None = None) -> tuple[Path, dict]:
    """Run a registered study; returns (run directory, summary)."""
    study = get_study(name)
    config = make_config(study, preset, sets or [])
    n = study.default_seeds if seeds is None else seeds
    if not 1 <= n <= MAX_SEEDS:
        raise UsageError(f"--seeds must be at least 1 and at most {MAX_SEEDS}, got {n}")
    if not 0 <= seed_start <= MAX_SEED - n:
        raise UsageError(f"--seed-start must be in [0, 2**62 - seeds], got {seed_start}")
    memory = getattr(config, "memory_bytes", None)
    if memory is not None:
        try:
            check_memory(memory(n), f"{name} with {n} seeds",
                         "run fewer seeds at a time (--seeds, --seed-start) or shrink the model")
        except ValueError as e:
            raise UsageError(str(e)) from None
    seed_list = list(range(seed_start, seed_start + n))
    out_dir = Path(out) if out is not None else default_out(study, config, seed_list)
    store = store if store is not None else Store()
    check_writable_dir(out_dir, "--out")
    check_writable_dir(store.root, "the cache (INTERP_CACHE)")
    with run_lock(out_dir):
        # refs are recorded as each stage is built or used; "finished" once the run is
        store.bind(out_dir)
        summary = study.run(config, seed_list, out_dir, store)
        store.finish()
    return out_dir, summary


MAX_SEEDS = 10_000


def load_run(run_dir: str | Path) -> tuple[dict, dict]:
    """A run directory's (artifacts.json, summary.json), checked: well-formed JSON of the
    right shape, a registered study whose config the summary's config still builds, and
    at least one seed. Anything else is a one-line ``UsageError`` naming the fix."""
    run_dir = Path(run_dir)
    art = validate_artifacts(run_dir, read_json(run_dir / "artifacts.json"))
    summary = validate_summary(run_dir, read_json(run_dir / "summary.json"))
    if art["study"] != summary["study"]:
        raise UsageError(f"{run_dir}: artifacts.json is from a {art['study']} run but "
                         f"summary.json from a {summary['study']} run; rerun the study")
    study = get_study(summary["study"])
    c = {k: tuple(v) if isinstance(v, list) else v for k, v in summary["config"].items()}
    try:
        study.config_cls(**c)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{run_dir}/summary.json has an invalid config ({e}); rerun the "
                         "study to rewrite it") from None
    return art, summary


def run_dir_or_default(run_dir: str | Path | None, study: str = "owl-numbers") -> Path:
    """A report's input: the given run directory (checked), or ``study`` run with its
    defaults (from the cache when it has been run before)."""
    if run_dir is None:
        return run_study(study)[0]
    path = Path(run_dir)
    if not (path / "artifacts.json").is_file():
        raise UsageError(f"{path} has no artifacts.json; pass a run directory written by "
                         f"`python -m interp.study run {study}`")
    load_run(path)  # one-line errors for a damaged run directory, before any work
    check_writable_dir(path, "the run directory")
    check_writable_dir(Store().root, "the cache (INTERP_CACHE)")
    return path
