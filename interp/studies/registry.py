"""The study registry: a study is a config dataclass plus a run function, registered by name.

Owns: ``Study``, ``register``, lookup by name. Must not import: analysis, reports, the CLIs.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interp.errors import UsageError
from interp.storage.store import Store


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    config_cls: type
    run: Callable[[Any, list[int], Path, Store], dict]
    description: str
    default_seeds: int = 3
    presets: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


REGISTRY: dict[str, Study] = {}
_STUDY_MODULES = ("interp.studies.digits", "interp.studies.owl", "interp.studies.lm_numbers",
                  "interp.studies.transfer")


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
