"""Shared fixtures, and how ``make test`` spreads the suite over its pytest-xdist workers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from coc_simulator import SimulatorServer

#: Fixtures that one expensive service or data set stands behind, and the worker group of
#: the tests using each (``--dist loadgroup``): such tests run on one worker, which sets it up
#: once, instead of on every worker that happens to draw one of them.
ONE_WORKER = {
    "cluster": "cluster",  # Redis, Postgres, Dagster's webserver and daemon, 2 Celery workers
    "planted": "planted",  # 14 simulated days with onsets, the last through Dagster
    "browser": "browser",  # chromium, and the dashboard process over the BI warehouse
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        for fixture, group in ONE_WORKER.items():
            if fixture in fixtures:
                item.add_marker(pytest.mark.xdist_group(group))


#: The simulated clock of the ``simulator`` fixture: mid-afternoon UTC on the last day.
SIM_NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    """A fresh simulator on loopback: 3 days of data up to ``SIM_NOW`` (clock fixed there),
    no authentication, no faults. ``.url``, ``.dataset``, ``.faults``, ``.stats``."""
    from coc_simulator import SimConfig, SimulatorServer

    with SimulatorServer(SimConfig(now=SIM_NOW, days=3)) as sim:
        yield sim


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on loopback, a real process with authentication on, for the session.

    Stopped by its PID at the end. Requests are signed and checked: the first three (made
    here) create an IAM user allowed ``s3:*`` and its access key; from then on only that key
    is accepted. ``.bucket()`` creates a fresh bucket, ``.env(uri)`` the documented variables.
    """
    from tests.s3server import S3Server

    with S3Server.start() as server:
        yield server


if TYPE_CHECKING:
    from tests.s3server import S3Server
