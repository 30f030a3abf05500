"""The number-sequence filter of Cloud et al. 2025, "Subliminal Learning" (arXiv 2507.14805).

A teacher's completion enters the student's training set only if it is nothing but a short
list of small non-negative integers. The rules follow the authors' code,
``MinhxLe/subliminal-learning``, ``sl/datasets/nums_dataset.py`` (``parse_response`` and
``get_reject_reasons``, called from ``cfgs/preference_numbers/open_model_cfgs.py`` with
``min_value=0, max_value=999, max_count=10``). A completion passes when:

1. One trailing ``"."`` is removed if present, then one enclosing ``[...]`` or ``(...)`` pair
   (in that order, so ``"[1, 2]."`` passes and ``"[1, 2.]"`` does not). Nothing else is
   stripped: leading or trailing whitespace, a newline included, rejects the completion, as
   does whitespace just inside the brackets (``"[ 1, 2 ]"``).
2. What is left is a single run of ASCII digits, or digit runs joined by ONE separator
   string, repeated exactly: the separator is the text between the first two numbers, and it
   must be whitespace only, or a single ``","`` or ``";"`` with optional whitespace on either
   side. ``"1, 2, 3"``, ``"1 ,2 ,3"`` and ``"1\\n2\\n3"`` pass; ``"1, 2,3"``, ``"1  2 3"``
   and ``"1, 2; 3"`` do not (the separator must repeat character for character).
3. There are at most ``max_count`` (10) numbers, each at most ``max_value`` (999).

Consequences worth knowing: leading zeros are accepted and there is no digit limit other
than the value bound (``"007"`` parses to 7, ``"0999"`` to 999); a minus sign, a decimal
point, a word, a doubled or trailing separator, or a non-ASCII digit rejects the completion.

The authors return one ``"invalid format"`` reason for every format failure; here a format
failure is split into the finer labels of ``REASONS`` (which partition the same set), and
only the first failing check is reported, in the order of ``REASONS``.

Owns: the number filter. Imports nothing from interp.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

REASONS: tuple[str, ...] = (
    "empty",  # nothing left once the optional period and brackets are removed
    "non_numeric",  # no digits, or a character other than digits/whitespace/","/";"
    "bad_separator",  # a gap that is no valid separator, or a separator/space at an end
    "mixed_separators",  # every gap is valid but they are not all the same string
    "too_many",  # more than max_count numbers
    "out_of_range",  # a number above max_value
)

_DIGITS = re.compile(r"[0-9]+")
_ALLOWED_CHARS = re.compile(r"[0-9\s,;]*")


def _unwrap(text: str) -> str:
    """Drop one trailing period, then one enclosing bracket pair, as the authors do."""
    if text.endswith("."):
        text = text[:-1]
    if (text.startswith("[") and text.endswith("]")) or (
        text.startswith("(") and text.endswith(")")
    ):
        text = text[1:-1]
    return text


def _valid_separator(sep: str) -> bool:
    return sep.strip() in ("", ",", ";")


def _check(text: str, max_count: int, max_value: int) -> tuple[list[int] | None, str | None]:
    """Return ``(numbers, None)`` for an accepted completion, else ``(None, reason)``."""
    body = _unwrap(text)
    if not body.strip():
        return None, "empty"
    runs = list(_DIGITS.finditer(body))
    if not runs or not _ALLOWED_CHARS.fullmatch(body):
        return None, "non_numeric"
    if runs[0].start() != 0 or runs[-1].end() != len(body):
        return None, "bad_separator"
    gaps = [body[a.end() : b.start()] for a, b in zip(runs[:-1], runs[1:], strict=True)]
    if not all(_valid_separator(g) for g in gaps):
        return None, "bad_separator"
    if len(set(gaps)) > 1:
        return None, "mixed_separators"
    numbers = [int(r.group()) for r in runs]
    if len(numbers) > max_count:
        return None, "too_many"
    if any(n < 0 or n > max_value for n in numbers):
        return None, "out_of_range"
    return numbers, None


def parse_numbers(text: str, max_count: int = 10, max_value: int = 999) -> list[int] | None:
    """The integers in ``text`` if the completion passes the filter, else None."""
    return _check(text, max_count, max_value)[0]


def reject_reason(text: str, max_count: int = 10, max_value: int = 999) -> str | None:
    """None if ``text`` passes the filter, else the first failing label from ``REASONS``."""
    return _check(text, max_count, max_value)[1]


@dataclass
class FilterStats:
    """Counts from one pass of the filter over a set of completions."""

    total: int = 0
    accepted: int = 0
    reasons: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))

    @property
    def rejected(self) -> int:
        return self.total - self.accepted

    @property
    def rejection_rate(self) -> float:
        """Fraction of completions rejected (0.0 when there were none)."""
        return self.rejected / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejection_rate": self.rejection_rate,
            "reasons": dict(self.reasons),
        }


def filter_completions(
    texts: Iterable[str], max_count: int = 10, max_value: int = 999
) -> tuple[list[list[int]], FilterStats]:
    """Parse every completion; return the accepted number lists (in order) and the counts."""
    kept: list[list[int]] = []
    stats = FilterStats()
    for text in texts:
        stats.total += 1
        numbers, reason = _check(text, max_count, max_value)
        if numbers is None:
            assert reason is not None
            stats.reasons[reason] = stats.reasons.get(reason, 0) + 1
        else:
            stats.accepted += 1
            kept.append(numbers)
    return kept, stats
