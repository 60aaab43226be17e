"""How ``make test`` spreads the suite over its pytest-xdist workers (``--dist loadgroup``).

Two rules, both to shorten the run's wall time on a machine of few cores:

- **Shared set-ups stay on one worker.** The tests of a group in ``ONE_WORKER`` go to one
  worker as a unit, which sets their expensive module-scoped set-up up once, instead of
  every worker that draws one of them setting up its own (the CPU of a set-up done three
  times is taken from the other workers). Every other test is its own unit.
- **Long work starts first.** The groups go out first, in ``ONE_WORKER``'s order (longest
  first), then the modules holding a test marked ``slow``, then the rest: short tests fill
  the workers' ends instead of a long one starting last and keeping one worker busy alone.

``--dist worksteal`` would balance single tests as well, but it cannot keep a group on one
worker: a stolen cluster test would start a second cluster.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

#: group -> node-id prefixes of its tests; longest group first
ONE_WORKER: dict[str, tuple[str, ...]] = {
    # Redis, Postgres, Dagster's webserver and daemon, 2 Celery workers
    "cluster": ("tests/integration/test_cluster.py::",),
    # chromium, and the dashboard process over the BI warehouse
    "browser": ("tests/bi/test_dashboard_browser.py::",),
    # 14 simulated days with planted onsets, the last through Dagster
    "planted-onsets": ("tests/integration/test_failure_shifts_scenarios.py::",),
    # a day ingested by the CLI locally and into moto's S3, read by 13 of 17 tests
    "exit-codes": ("tests/integration/test_exit_codes.py::",),
    # one clean Dagster run of a day, read by these
    "pipeline-day-run": tuple(
        f"tests/integration/test_pipeline.py::{name}"
        for name in (
            "test_a_day_lands_exactly_as_the_api_serves_it",
            "test_types_follow_the_contract",
            "test_the_warehouse_step_reports_every_marts_rows",
            "test_transient_faults_end_with_the_same_data",
        )
    ),
    # a day ingested by the CLI, which each foreign-file case reads
    "foreign-duckdb": ("tests/integration/test_foreign_duckdb.py::",),
    # one clean run of a day, which each SIGTERM case interrupts a copy of
    "sigterm": ("tests/integration/test_termination.py::test_sigterm_aborts_as_cleanly_as_sigint",),
    # the good copy of a day that every failed run must leave alone
    "batch-totals": ("tests/integration/test_batch_totals.py::",),
    # the hand-checked warehouse every mart test queries
    "marts": ("tests/unit/test_marts.py::",),
}


#: tests of a grouped module that read none of its shared set-up: any worker runs them
ALONE = (
    # a simulation of its own, as long as the planted one: in parallel with it
    "tests/integration/test_failure_shifts_scenarios.py::test_false_alarms_",
)


def group_of(nodeid: str) -> str | None:
    if nodeid.startswith(ALONE):
        return None
    return next(
        (group for group, prefixes in ONE_WORKER.items() if nodeid.startswith(prefixes)), None
    )


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` whose groups are ``ONE_WORKER``'s, every other test its own unit,
    in the order the workers collected them (see ``pytest_collection_modifyitems``). xdist's
    ``xdist_group`` marks cannot be used: xdist 3.8 passes them in the node id, which
    pytest 9.2 no longer lets it change (pytest-xdist issue 1386)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    config.option.loadscopereorder = False  # the order is the collection's, set below

    class SharedSetupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid) or super()._split_scope(nodeid)

    return SharedSetupScheduling(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On xdist's workers (each sorts alike, so their collections stay equal): the groups in
    ``ONE_WORKER``'s order, then the modules holding a slow test, then the rest; the items
    of a module stay together, so a worker sets a module's fixtures up once."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return
    ranks = {group: rank for rank, group in enumerate(ONE_WORKER)}
    slow_modules = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        group = group_of(item.nodeid)
        if group is not None:
            return ranks[group]
        return len(ranks) + (0 if item.nodeid.split("::")[0] in slow_modules else 1)

    items.sort(key=rank)  # stable: the collection's order within each rank
