"""The xdist groups of ``make test`` name tests that exist: a renamed module or test would
otherwise silently leave its group, and its shared set-up would run on every worker again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.xdist_groups import ALONE, ONE_WORKER, group_of

ROOT = Path(__file__).parents[2]


def _exists(prefix: str) -> bool:
    module, _, name = prefix.partition("::")
    path = ROOT / module
    if not path.is_file():
        return False
    return not name or re.search(rf"^def {re.escape(name)}", path.read_text(), re.M) is not None


@pytest.mark.parametrize("group", list(ONE_WORKER))
def test_every_prefix_of_a_group_names_a_module_or_test_that_exists(group: str) -> None:
    missing = [p for p in ONE_WORKER[group] if not _exists(p)]
    assert missing == [], f"group {group}: {missing}"


def test_the_tests_left_alone_exist_and_leave_their_group() -> None:
    for prefix in ALONE:
        assert _exists(prefix), prefix
        assert group_of(prefix + "x") is None
    planted = "tests/integration/test_failure_shifts_scenarios.py::test_report_prints"
    assert group_of(planted) == "planted-onsets"
