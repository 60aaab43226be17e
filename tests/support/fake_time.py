"""A fake monotonic clock and sleep for the rate gate and the client."""

from __future__ import annotations

import asyncio


class FakeTime:
    """A monotonic clock that moves only when something sleeps on it; every sleep is recorded.

    Pass ``clock`` and ``sleep`` to the gate or the client: a Retry-After of minutes costs no
    real time, and the waits are there to assert on.
    """

    START = 1_000.0

    def __init__(self) -> None:
        self.now = self.START
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += max(delay, 0.0)
        await asyncio.sleep(0)  # a real sleep yields to the other tasks: so does this one

    def advance(self, seconds: float) -> None:
        self.now += seconds
