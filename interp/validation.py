"""Field checks shared by the config dataclasses' ``__post_init__``.

Every int field must hold an int (not a bool, not 12.0), every float field a finite
number; sizes are checked against ranges, seeds against ``MAX_SEED``, and memory
estimates against the machine's RAM. Each failure is a one-line ``ConfigError`` naming
the field and the fix.

Owns: ``check_types``, ``check_range``, ``check_seed``, ``check_memory``. Imports only
``interp.errors``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from typing import Any

from interp.errors import ConfigError

# seeds are offset by at most a few million (digits' cross-init reference, owl's sample
# stream) and must stay below 2**63 for torch.Generator.manual_seed and numpy
MAX_SEED = 2**62


def check_types(cfg: Any) -> None:
    """int fields hold ints and float fields finite numbers (bool is neither)."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        v, tp = getattr(cfg, f.name), hints[f.name]
        if tp is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise ConfigError(f"{f.name} must be an integer, got {v!r}")
        if tp is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{f.name} must be a number, got {v!r}")
            if not math.isfinite(v):
                raise ConfigError(f"{f.name} must be a finite number, got {v!r}")
        if tp is bool and not isinstance(v, bool):
            raise ConfigError(f"{f.name} must be true or false, got {v!r}")
        if typing.get_origin(tp) is typing.Literal and v not in typing.get_args(tp):
            raise ConfigError(f"invalid value {v!r} for {f.name}; valid values: "
                              f"{', '.join(map(str, typing.get_args(tp)))}")


def check_range(cfg: Any, names: tuple[str, ...] | list[str], low: float,
                high: float | None = None, low_open: bool = False) -> None:
    """Each named field lies in [low, high] ((low, high] with ``low_open``)."""
    for name in names:
        v = getattr(cfg, name)
        bad = v <= low if low_open else v < low
        if bad or (high is not None and v > high):
            if low_open and low == 0 and high is None:
                raise ConfigError(f"{name} must be positive, got {v!r}")
            lo = f"> {low:g}" if low_open else f">= {low:g}"
            hi = f" and <= {high:g}" if high is not None else ""
            raise ConfigError(f"{name} must be {lo}{hi}, got {v!r}")


def check_seed(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if not 0 <= value < MAX_SEED:
        raise ConfigError(f"{name} must be in [0, 2**62), got {value}")


def total_memory() -> int:
    """Physical memory in bytes (``INTERP_MEMORY_BYTES`` overrides, for tests)."""
    if "INTERP_MEMORY_BYTES" in os.environ:
        return int(os.environ["INTERP_MEMORY_BYTES"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(estimate: int, what: str, fix: str) -> None:
    """Refuse a config whose estimated peak memory exceeds the machine's RAM."""
    have = total_memory()
    if estimate > have:
        raise ConfigError(f"{what} needs about {_gb(estimate)} of memory, more than this "
                          f"machine's {_gb(have)}; {fix}")


def _gb(n: int) -> str:
    return f"{n / 1e9:.3g} GB" if n < 1e15 else f"{float(n):.2g} bytes"
