"""A sweep spec: which study, which cells (a grid or a list of ``--set`` overrides), which
seeds, which metric, which executor; loaded from TOML (or YAML) and checked before any work.

1. ``load_spec(path)`` parses the file (``tomllib``; YAML through PyYAML when installed) into
   ``SweepSpec``, whose ``__post_init__`` checks every field (one-line ``ConfigError``).
2. ``cells(spec)`` expands it: a ``[grid]`` table is the cartesian product of its value
   lists (in file order), ``[[cells]]`` a list of explicit cells; each cell's overrides are
   the spec's ``set`` plus its own, and each cell's study config is built and validated
   (``runner.make_config``) before anything runs.

A cell's run directory is ``<out>/cells/<label>-<hash>``, the hash covering the study, its
config, its seeds and the worker's thread count (the numbers depend on it; see
``interp.storage.store``), so a changed setting never reuses another setting's run.

Owns: ``SweepSpec``, ``SlurmOptions``, ``Cell``, ``load_spec``, ``cells``. Must not import:
reports, analysis, the CLIs.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Any

from interp.errors import ConfigError, UsageError
from interp.storage.store import config_key
from interp.studies.registry import get_study
from interp.studies.runner import MAX_SEEDS, make_config
from interp.validation import MAX_SEED

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package
    import tomli as tomllib

EXECUTORS = ("local", "slurm")  # interp.sweeps.executors.EXECUTORS holds the implementations
METRICS_HINT = "see `python -m interp.sweep --list-metrics`"


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """What a researcher with an allocation sets: partition, CPUs per array task (the
    task's torch threads), memory, time limit, extra sbatch parameters (submitit names,
    e.g. ``{"account": "abc"}``) and setup lines run before the task (``module load ...``)."""

    partition: str | None = None
    cpus_per_task: int = 1
    mem_gb: float = 4.0
    timeout_min: int = 24 * 60
    additional: dict[str, Any] = dataclasses.field(default_factory=dict)
    setup: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (isinstance(self.cpus_per_task, int) and 1 <= self.cpus_per_task <= 1024):
            raise ConfigError(f"slurm.cpus_per_task must be an integer in [1, 1024], got "
                              f"{self.cpus_per_task!r}")
        if not (isinstance(self.mem_gb, (int, float)) and 0 < self.mem_gb <= 4096):
            raise ConfigError(f"slurm.mem_gb must be a number in (0, 4096], got {self.mem_gb!r}")
        if not (isinstance(self.timeout_min, int) and self.timeout_min >= 1):
            raise ConfigError(f"slurm.timeout_min must be a positive integer (minutes), got "
                              f"{self.timeout_min!r}")
        if not isinstance(self.additional, dict):
            raise ConfigError("slurm.additional must be a table of sbatch parameters")
        if not all(isinstance(s, str) for s in self.setup):
            raise ConfigError("slurm.setup must be a list of shell lines")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep: ``study`` (registered name) with ``preset`` and ``set`` applied to every
    cell; ``grid`` (key -> list of values, crossed) or ``cells`` (list of {label, set});
    ``seeds`` per cell from ``seed_start``; ``metric`` for the figure (and the table's first
    column), ``columns`` for more table columns; ``executor`` with
    ``workers`` concurrent studies and ``threads`` torch threads each (0: the cores
    available divided by the workers; on Slurm the array task's ``cpus_per_task``)."""

    study: str
    name: str = "sweep"
    preset: str | None = None
    set: tuple[str, ...] = ()
    grid: dict[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    cells: tuple[dict[str, Any], ...] = ()
    seeds: int | None = None
    seed_start: int = 0
    metric: str | None = None
    columns: tuple[str, ...] = ()
    out: str | None = None
    executor: str = "local"
    workers: int = 1
    threads: int = 0
    timeout_min: int = 24 * 60
    slurm: SlurmOptions = dataclasses.field(default_factory=SlurmOptions)

    def __post_init__(self) -> None:
        get_study(self.study)  # one line naming the valid studies
        if self.executor not in EXECUTORS:
            raise ConfigError(f"unknown executor {self.executor!r}; valid executors: "
                              f"{', '.join(EXECUTORS)}")
        for name, low in (("workers", 1), ("threads", 0), ("timeout_min", 1), ("seed_start", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {v!r}")
        if self.seeds is not None and (isinstance(self.seeds, bool) or not isinstance(
                self.seeds, int) or not 1 <= self.seeds <= MAX_SEEDS):
            raise ConfigError(f"seeds must be an integer in [1, {MAX_SEEDS}], got {self.seeds!r}")
        if self.seed_start > MAX_SEED - (self.seeds or 1):
            raise ConfigError("seed_start must be below 2**62 - seeds")
        if self.grid and self.cells:
            raise ConfigError("give either [grid] or [[cells]], not both")
        for key, values in self.grid.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(f"grid.{key} must be a non-empty list of values")
        for i, c in enumerate(self.cells):
            if not isinstance(c, dict) or set(c) - {"label", "set"}:
                raise ConfigError(f"cells[{i}] must be a table with 'set' (a list of "
                                  "key=value) and optionally 'label'")
            if not all(isinstance(s, str) for s in c.get("set", [])):
                raise ConfigError(f"cells[{i}].set must be a list of key=value strings")
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", self.name):
            raise ConfigError(f"name must be letters, digits, _ . + - (a directory name), "
                              f"got {self.name!r}")
        if not all(isinstance(s, str) for s in self.set):
            raise ConfigError("set must be a list of key=value strings")

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / "sweeps" / self.name


@dataclasses.dataclass(frozen=True)
class Cell:
    """One study of the sweep: its label, its ``--set`` overrides (spec's then the cell's),
    and the config they build."""

    label: str
    sets: tuple[str, ...]
    config: Any
    seeds: tuple[int, ...]

    def key(self, study: str, threads: int) -> str:
        return config_key(study, [self.config, list(self.seeds), threads])

    def run_dir(self, spec: SweepSpec, threads: int) -> Path:
        slug = re.sub(r"[^A-Za-z0-9_.+-]+", "_", self.label)[:60] or "cell"
        return spec.out_dir / "cells" / f"{slug}-{self.key(spec.study, threads)[:8]}"


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(map(_fmt, v))
    return str(v)


def cells(spec: SweepSpec) -> list[Cell]:
    """The spec's cells, each config built and validated (``UsageError`` naming the cell)."""
    study = get_study(spec.study)
    n = spec.seeds if spec.seeds is not None else study.default_seeds
    seeds = tuple(range(spec.seed_start, spec.seed_start + n))
    if spec.grid:
        keys = list(spec.grid)
        raw = [(" ".join(f"{k}={_fmt(v)}" for k, v in zip(keys, combo)),
                [f"{k}={_fmt(v)}" for k, v in zip(keys, combo)])
               for combo in itertools.product(*(spec.grid[k] for k in keys))]
    elif spec.cells:
        raw = [(c.get("label") or " ".join(c.get("set", [])) or "defaults", list(c.get("set", [])))
               for c in spec.cells]
    else:
        raw = [("defaults", [])]
    out, labels = [], set()
    for label, own in raw:
        if label in labels:
            raise UsageError(f"two cells are labelled {label!r}; give each cell its own label")
        labels.add(label)
        sets = (*spec.set, *own)
        try:
            config = make_config(study, spec.preset, list(sets))
        except UsageError as e:
            raise UsageError(f"cell {label!r}: {e}") from None
        out.append(Cell(label, sets, config, seeds))
    return out


def _load_yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise UsageError("YAML specs need PyYAML (pip install pyyaml); or write the spec "
                         "as TOML") from None
    return yaml.safe_load(text)


LOADERS = {".toml": tomllib.loads, ".yaml": _load_yaml, ".yml": _load_yaml}
FIELDS = [f.name for f in dataclasses.fields(SweepSpec)]


def from_dict(data: Any, where: str = "spec") -> SweepSpec:
    if not isinstance(data, dict):
        raise UsageError(f"{where} must be a table of settings")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise UsageError(f"{where}: unknown setting(s) {', '.join(unknown)}; valid settings: "
                         f"{', '.join(FIELDS)}")
    if "study" not in data:
        raise UsageError(f"{where}: no study; add study = \"owl-numbers\" (or another "
                         "registered study)")
    d = dict(data)
    slurm = d.pop("slurm", {}) or {}
    if not isinstance(slurm, dict):
        raise UsageError(f"{where}: [slurm] must be a table")
    sfields = [f.name for f in dataclasses.fields(SlurmOptions)]
    bad = sorted(set(slurm) - set(sfields))
    if bad:
        raise UsageError(f"{where}: unknown slurm setting(s) {', '.join(bad)}; valid: "
                         f"{', '.join(sfields)}")
    if "setup" in slurm:
        slurm["setup"] = tuple(slurm["setup"])
    d["set"] = tuple(d.get("set", ()))
    d["cells"] = tuple(d.get("cells", ()))
    d["columns"] = tuple(d.get("columns", ()))
    d["grid"] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.get("grid", {}).items()}
    try:
        return SweepSpec(**d, slurm=SlurmOptions(**slurm))
    except (TypeError, ValueError) as e:
        raise UsageError(f"{where}: {e}") from None


def load_spec(path: str | Path, **overrides: Any) -> SweepSpec:
    """The spec at ``path`` with command-line ``overrides`` (None values ignored; ``set``
    entries are appended to the spec's)."""
    path = Path(path)
    if path.suffix not in LOADERS:
        raise UsageError(f"{path}: unknown spec format {path.suffix!r}; valid: "
                         f"{', '.join(LOADERS)}")
    try:
        text = path.read_text()
    except OSError as e:
        raise UsageError(f"cannot read the sweep spec {path}: {e.strerror}") from None
    try:
        data = LOADERS[path.suffix](text)
    except UsageError:
        raise
    except Exception as e:  # tomllib.TOMLDecodeError, yaml.YAMLError
        raise UsageError(f"{path} is not valid {path.suffix[1:].upper()}: "
                         f"{str(e).splitlines()[0]}") from None
    if isinstance(data, dict):
        data = dict(data)
        data.setdefault("name", re.sub(r"[^A-Za-z0-9_.+-]+", "_", path.stem))
        extra = overrides.pop("set", None) or []
        data["set"] = [*data.get("set", []), *extra]
        data.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(data, str(path))
