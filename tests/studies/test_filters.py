"""The number-sequence filter of Cloud et al. 2025 (interp.studies.filters)."""

from __future__ import annotations

import pytest

from interp.studies.filters import (
    REASONS,
    FilterStats,
    filter_completions,
    parse_numbers,
    reject_reason,
)

ACCEPT = [
    ("182, 818, 725", [182, 818, 725]),
    ("[1, 2, 3]", [1, 2, 3]),
    ("(1, 2, 3)", [1, 2, 3]),
    ("1 2 3.", [1, 2, 3]),
    ("12;34;56", [12, 34, 56]),
    ("12; 34; 56", [12, 34, 56]),
    ("1,2,3", [1, 2, 3]),
    ("1 ,2 ,3", [1, 2, 3]),
    ("1\n2\n3", [1, 2, 3]),
    ("1,\n2,\n3", [1, 2, 3]),
    ("1\t2\t3", [1, 2, 3]),
    ("[1, 2, 3].", [1, 2, 3]),
    ("42", [42]),
    ("42.", [42]),
    ("[42]", [42]),
    ("0, 999", [0, 999]),
    ("007, 010", [7, 10]),  # leading zeros are accepted, as in the authors' code
    ("0999", [999]),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10", list(range(1, 11))),
    ("629 937 483 762 519 674 838 291", [629, 937, 483, 762, 519, 674, 838, 291]),
]

REJECT = [
    ("1, 2; 3", "mixed_separators"),
    ("1, 2,3", "mixed_separators"),
    ("1  2 3", "mixed_separators"),
    ("1 2\n3", "mixed_separators"),
    ("1000", "out_of_range"),
    ("5, 1000, 7", "out_of_range"),
    ("owl", "non_numeric"),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", "too_many"),
    ("-5", "non_numeric"),
    ("3.5, 2", "non_numeric"),
    ("", "empty"),
    ("   ", "empty"),
    ("[]", "empty"),
    (".", "empty"),
    ("Here are the numbers: 1, 2, 3", "non_numeric"),
    ("1, 2, 3 owls", "non_numeric"),
    ("1, two, 3", "non_numeric"),
    ("1, 2, 3..", "non_numeric"),
    ("[1, 2, 3)", "non_numeric"),
    ("[1, 2, 3.]", "non_numeric"),
    ("1-2-3", "non_numeric"),
    ("\u0663, 4", "non_numeric"),  # Arabic-Indic digit three
    (", ;", "non_numeric"),
    (" 1, 2, 3", "bad_separator"),
    ("1, 2, 3\n", "bad_separator"),
    ("[ 1, 2, 3 ]", "bad_separator"),
    ("1, 2, 3,", "bad_separator"),
    ("1,,2", "bad_separator"),
    ("1, ;2", "bad_separator"),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPT)
def test_accepts(text, expected):
    assert parse_numbers(text) == expected
    assert reject_reason(text) is None


@pytest.mark.parametrize(("text", "reason"), REJECT)
def test_rejects_with_reason(text, reason):
    assert parse_numbers(text) is None
    assert reject_reason(text) == reason


def test_reasons_are_a_small_fixed_set():
    assert REASONS == (
        "empty",
        "non_numeric",
        "bad_separator",
        "mixed_separators",
        "too_many",
        "out_of_range",
    )
    assert {reason for _, reason in REJECT} == set(REASONS)


def test_too_many_is_reported_before_out_of_range():
    text = ", ".join(["1000"] * 11)
    assert reject_reason(text) == "too_many"


def test_bounds_are_parameters():
    assert parse_numbers("1, 2, 3", max_count=2) is None
    assert reject_reason("1, 2, 3", max_count=2) == "too_many"
    assert parse_numbers("1, 2", max_count=2) == [1, 2]
    assert reject_reason("50, 51", max_value=50) == "out_of_range"
    assert parse_numbers("50, 49", max_value=50) == [50, 49]
    assert parse_numbers("1234, 5", max_value=9999) == [1234, 5]


def test_filter_completions_keeps_accepted_in_order_and_counts_reasons():
    texts = ["182, 818, 725", "owl", "[1, 2, 3]", "1, 2; 3", "1000", "", "owl too", "4 5 6."]
    kept, stats = filter_completions(texts)
    assert kept == [[182, 818, 725], [1, 2, 3], [4, 5, 6]]
    assert isinstance(stats, FilterStats)
    assert stats.total == 8
    assert stats.accepted == 3
    assert stats.rejected == 5
    assert stats.rejection_rate == pytest.approx(5 / 8)
    assert stats.reasons == {
        "empty": 1,
        "non_numeric": 2,
        "bad_separator": 0,
        "mixed_separators": 1,
        "too_many": 0,
        "out_of_range": 1,
    }
    assert stats.as_dict() == {
        "total": 8,
        "accepted": 3,
        "rejected": 5,
        "rejection_rate": pytest.approx(0.625),
        "reasons": stats.reasons,
    }


def test_filter_completions_passes_bounds_through_and_takes_any_iterable():
    kept, stats = filter_completions((t for t in ["1, 2, 3", "1, 2"]), max_count=2)
    assert kept == [[1, 2]]
    assert stats.reasons["too_many"] == 1
    kept, stats = filter_completions(["998, 999"], max_value=998)
    assert kept == []
    assert stats.reasons["out_of_range"] == 1


def test_empty_input_has_zero_rejection_rate():
    kept, stats = filter_completions([])
    assert kept == []
    assert stats.total == 0
    assert stats.rejection_rate == 0.0
    assert sum(stats.reasons.values()) == 0
