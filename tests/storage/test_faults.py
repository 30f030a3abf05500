"""The fault-injection suite: real CLI subprocesses under kill -9, concurrency, gc, every
kind of corruption, full and read-only locations and bad input (cases in ``faults.py``).

Each case asserts, for every row it produces: recovered, numbers identical (where there
are numbers), nothing lost. ``analyses/fault_table.py`` runs the same cases into a table.
A few minutes in all on an idle 2-core machine (the baselines are shared).
"""

from __future__ import annotations

import pytest

from tests.storage.faults import CASES, Lab, table


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return Lab(tmp_path_factory.mktemp("faults"))


@pytest.mark.parametrize("case", list(CASES))
def test_fault_case(lab, case):
    rows = CASES[case](lab)
    assert rows
    if all("(not run" in r.case for r in rows):  # no tmpfs mounts without root
        pytest.skip(rows[0].case)
    bad = [r for r in rows if not r.ok]
    assert not bad, "\n" + table(bad)
