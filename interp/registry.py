"""The study registry: a study is a config dataclass plus a run function, registered by name."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interp.store import Store


class UsageError(Exception):
    """Bad user input; the CLI prints the message on one line and exits 2."""


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    config_cls: type
    run: Callable[[Any, list[int], Path, Store], dict]
    description: str
    default_seeds: int = 3
    presets: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


REGISTRY: dict[str, Study] = {}
_STUDY_MODULES = ("interp.digits", "interp.owl")


def register(study: Study) -> Study:
    REGISTRY[study.name] = study
    return study


def studies() -> dict[str, Study]:
    for mod in _STUDY_MODULES:
        importlib.import_module(mod)
    return REGISTRY


def get_study(name: str) -> Study:
    reg = studies()
    if name not in reg:
        raise UsageError(f"unknown study {name!r}; valid studies: {', '.join(sorted(reg))}")
    return reg[name]
