"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pipelines.simulator import SimConfig, SimulatorServer

#: The simulated clock of the ``simulator`` fixture: mid-afternoon UTC on the last day.
SIM_NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    """A fresh simulator on loopback: 3 days of data up to ``SIM_NOW`` (clock fixed there),
    no authentication, no faults. ``.url``, ``.dataset``, ``.faults``, ``.stats``."""
    with SimulatorServer(SimConfig(now=SIM_NOW, days=3)) as sim:
        yield sim
