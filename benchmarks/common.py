"""What every benchmark row shares: its measurements, paired repetitions, the run context."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm.auto import tqdm

# the per-row progress bars; ``python -m benchmarks`` silences the toolkit's own bars
SHOW_PROGRESS = os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")

Goal = tuple[str, float] | str | None  # ("<=", 1.15), (">=", 10.0), free text, or none


@dataclasses.dataclass
class Measured:
    """One value per repetition for a baseline and a candidate, measured in pairs."""

    baseline: list[float]
    candidate: list[float]
    unit: str
    note: str = ""
    speedup: bool = False  # ratio = baseline / candidate; else candidate / baseline
    extra: str = ""  # shown beside the figure, e.g. tokens/s beside FLOP/s
    difference: bool = False  # "ratio" = candidate - baseline (a budget in the unit)

    @property
    def ratios(self) -> list[float]:
        pairs = zip(self.baseline, self.candidate)
        if self.difference:
            return [c - b for b, c in pairs]
        return [b / c if self.speedup else c / b for b, c in pairs]


@dataclasses.dataclass(frozen=True)
class Context:
    reps: int
    quick: bool  # smaller sizes, for smoke tests only
    tmp: Path  # scratch space for caches and runs, removed at exit
    align_run: Path | None = None  # the run whose align report the memory row measures


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    what: str  # what is measured: the candidate (the figure) against the baseline
    ratio: str  # how the ratio is formed
    goal: Goal
    run: Callable[[Context], Measured]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch at ``n`` threads (at least 1) inside the block, its count before restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seconds(fn: Callable[[], object], number: int = 1) -> float:
    """Wall seconds per call of ``fn``, averaged over ``number`` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def paired(reps: int, desc: str, baseline: Callable[[], float],
           candidate: Callable[[], float]) -> tuple[list[float], list[float]]:
    """``reps`` repetitions, each measuring ``baseline()`` then ``candidate()`` back to back."""
    base, cand = [], []
    for _ in tqdm(range(reps), desc=desc, disable=not SHOW_PROGRESS):
        base.append(baseline())
        cand.append(candidate())
    return base, cand
