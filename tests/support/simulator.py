"""Simulators a test starts on loopback and that stop when its scope ends."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from coc_simulator import SimConfig, SimulatorServer


class Simulators:
    """Starts simulators (``SimulatorServer``, a real HTTP server on a free loopback port) and
    stops them all at ``close()``: the fixtures ``simulators`` and ``module_simulators``."""

    def __init__(self) -> None:
        self._stack = ExitStack()

    def start(self, config: SimConfig | None = None, **server: Any) -> SimulatorServer:
        """A running simulator of ``config``; ``server`` as ``SimulatorServer`` takes them
        (``ak``/``sk``, ``token``, ``dataset``, ``faults``...)."""
        return self._stack.enter_context(SimulatorServer(config, **server))

    def close(self) -> None:
        self._stack.close()


class CleanSimulator:
    """Puts a shared simulator back as it started: no faults, no recorded requests, its
    clock where it was."""

    def __init__(self, sim: SimulatorServer) -> None:
        self.sim = sim
        self.started_at = sim.clock.fixed

    def __call__(self) -> None:
        self.sim.faults.reset()
        self.sim.stats.reset()
        self.sim.clock.set(self.started_at)
