"""Running a registered study: ``--set`` parsing, presets, the run directory, refs.

A study is a config dataclass plus a ``run(config, seeds, out, store) -> summary`` function.
Bad input (unknown study, unknown key, invalid value) is a ``UsageError`` naming the valid
choices; the CLI (``python -m interp.study``) prints it on one line.

Owns: turning (name, seeds, overrides) into a finished run directory. Must not import:
analysis, reports (a study writes its own report), the CLIs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from interp.errors import UsageError
from interp.storage.store import Store, config_key
from interp.studies.registry import Study, get_study


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
    if tp in (int, float):
        try:
            return tp(float(raw)) if tp is int and "e" in raw.lower() else tp(raw)
        except ValueError:
            raise UsageError(f"invalid value {raw!r} for {key}; expected {tp.__name__}") from None
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
    config = dataclasses.replace(config, **changes)
    validate = getattr(config, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as e:
            raise UsageError(str(e)) from None
    return config


def make_config(study: Study, preset: str | None, assignments: list[str]) -> Any:
    config = study.config_cls()
    if preset:
        if preset not in study.presets:
            raise UsageError(f"unknown preset {preset!r} for {study.name}; valid presets: "
                             f"{', '.join(sorted(study.presets)) or '(none)'}")
        config = dataclasses.replace(config, **study.presets[preset])
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
    if n < 1:
        raise UsageError(f"--seeds must be at least 1, got {n}")
    if seed_start < 0:
        raise UsageError(f"--seed-start must be non-negative, got {seed_start}")
    seed_list = list(range(seed_start, seed_start + n))
    out_dir = Path(out) if out is not None else default_out(study, config, seed_list)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = store if store is not None else Store()
    try:
        summary = study.run(config, seed_list, out_dir, store)
    finally:
        # also after a failure: the entries an interrupted run built are what a rerun resumes from
        store.write_refs(out_dir)
    return out_dir, summary


def run_dir_or_default(run_dir: str | Path | None, study: str = "owl-numbers") -> Path:
    """A report's input: the given run directory (checked), or ``study`` run with its
    defaults (from the cache when it has been run before)."""
    if run_dir is None:
        return run_study(study)[0]
    path = Path(run_dir)
    if not (path / "artifacts.json").is_file():
        raise UsageError(f"{path} has no artifacts.json; pass a run directory written by "
                         f"`python -m interp.study run {study}`")
    return path
