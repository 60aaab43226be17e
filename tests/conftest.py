"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from coc_simulator import SimulatorServer

#: The simulated clock of the ``simulator`` fixture: mid-afternoon UTC on the last day.
SIM_NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    """A fresh simulator on loopback: 3 days of data up to ``SIM_NOW`` (clock fixed there),
    no authentication, no faults. ``.url``, ``.dataset``, ``.faults``, ``.stats``."""
    from coc_simulator import SimConfig, SimulatorServer

    with SimulatorServer(SimConfig(now=SIM_NOW, days=3)) as sim:
        yield sim
