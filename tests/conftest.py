"""Shared fixtures: the simulator (one per module, or per test from a factory) and moto's S3
server. How ``make test`` spreads the suite over its workers: ``tests/support/xdist_groups.py``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from coc_simulator import SimulatorServer
    from tests.support.simulator import Simulators

#: how ``make test`` spreads the suite over its pytest-xdist workers
pytest_plugins = ["tests.support.xdist_groups"]


#: The simulated clock of the default simulator: mid-afternoon UTC on the last day.
SIM_NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "simulator(config, **server): the SimConfig and SimulatorServer arguments (ak/sk, "
        "token...) of the module's ``sim``; default 3 days up to SIM_NOW, no authentication",
    )


@pytest.fixture(scope="module")
def module_simulators() -> Iterator[Simulators]:
    """Starts simulators that stop at the end of the module: ``.start(config, **server)``."""
    from tests.support.simulator import Simulators

    pool = Simulators()
    yield pool
    pool.close()


@pytest.fixture
def simulators() -> Iterator[Simulators]:
    """Starts simulators that stop at the end of the test: ``.start(config, **server)``, for
    a test whose scenario is its own (a dataset, credentials, faults from the start)."""
    from tests.support.simulator import Simulators

    pool = Simulators()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def module_sim(request: pytest.FixtureRequest, module_simulators: Simulators) -> SimulatorServer:
    from coc_simulator import SimConfig

    marker = request.node.get_closest_marker("simulator")
    args, server = (marker.args, marker.kwargs) if marker else ((), {})
    config = args[0] if args else SimConfig(now=SIM_NOW, days=3)
    return module_simulators.start(config, **server)


@pytest.fixture
def sim(module_sim: SimulatorServer) -> Iterator[SimulatorServer]:
    """The module's simulator on loopback, started once per module, as its
    ``pytest.mark.simulator(config, ak=..., sk=...)`` describes (default: 3 days up to
    ``SIM_NOW``, no authentication). Every test finds it clean: no faults, no recorded
    requests, its clock where it started. ``.url``, ``.dataset``, ``.faults``, ``.stats``."""
    from tests.support.simulator import CleanSimulator

    clean = CleanSimulator(module_sim)
    clean()
    yield module_sim
    clean()


@pytest.fixture
def simulator(simulators: Simulators) -> SimulatorServer:
    """A fresh simulator for this test alone: 3 days of data up to ``SIM_NOW`` (clock fixed
    there), no authentication, no faults. ``.url``, ``.dataset``, ``.faults``, ``.stats``."""
    from coc_simulator import SimConfig

    return simulators.start(SimConfig(now=SIM_NOW, days=3))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on loopback, a real process with authentication on, for the session.

    Stopped by its PID at the end. Requests are signed and checked: the first three (made
    here) create an IAM user allowed ``s3:*`` and its access key; from then on only that key
    is accepted. ``.bucket()`` creates a fresh bucket, ``.env(uri)`` the documented variables.
    """
    from tests.support.s3server import S3Server

    with S3Server.start() as server:
        yield server


if TYPE_CHECKING:
    from tests.support.s3server import S3Server
