"""One gate every request of a run passes: a concurrency cap and a request-rate pacer.

The pacer spaces requests evenly at ``1/rate`` seconds (a token bucket with a burst of one),
so a server that allows R requests/s sees at most R. After a 429 everyone pauses, not just the
task that was throttled: the pause moves the shared schedule. In adaptive mode the rate is
also cut multiplicatively on a 429 and crept back up additively on success (AIMD), so a run
with no configured cap settles just under what the server allows.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

#: the starting rate when no cap is configured but adaptive pacing kicks in after a 429
_ADAPTIVE_FLOOR = 1.0
_DECREASE = 0.75
#: requests/s added per second of unthrottled running: at least this many ...
_INCREASE_PER_S = 0.5
#: ... or this fraction of the current rate, whichever is more
_INCREASE_FRACTION = 0.05
#: 429s closer together than this are one congestion signal
_CUT_INTERVAL_S = 1.0


class RequestGate:
    """Shared by all calls of one run; create it inside the running event loop."""

    def __init__(self, *, max_rps: float | None, concurrency: int, adaptive: bool = True):
        self.max_rps = max_rps
        self.adaptive = adaptive
        self._rate: float | None = max_rps
        self._semaphore = asyncio.Semaphore(concurrency)
        self._next_slot = 0.0
        self._last_raise = time.monotonic()
        self.throttled = 0
        self._paused_until = 0.0
        self._last_cut = -_CUT_INTERVAL_S
        self._recent: deque[float] = deque(maxlen=4096)

    @property
    def rate(self) -> float | None:
        """The pacing rate now, requests/s; ``None`` when unpaced."""
        return self._rate

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._semaphore:
            await self._wait_turn()
            yield

    def observed_rps(
        self, window_s: float = 2.0, min_span_s: float = 0.25, min_count: int = 10
    ) -> float | None:
        """Requests/s let through over the last ``window_s`` seconds; None on too little
        evidence (fewer than ``min_count`` requests, or all within ``min_span_s``)."""
        now = time.monotonic()
        recent = [t for t in self._recent if now - t <= window_s]
        if len(recent) < min_count:
            return None
        span = now - recent[0]
        if span < min_span_s:
            return None
        return len(recent) / span

    async def _wait_turn(self) -> None:
        while True:
            now = time.monotonic()
            if self._rate is None:
                wait = self._paused_until - now
            else:
                self._recover(now)
                slot = max(now, self._next_slot, self._paused_until)
                self._next_slot = slot + 1.0 / self._rate
                wait = slot - now
            if wait <= 0:
                break
            await asyncio.sleep(wait)
            if time.monotonic() >= self._paused_until:
                break
            # a 429 arrived while this task waited: queue again behind the shared pause
        self._recent.append(time.monotonic())

    def _recover(self, now: float) -> None:
        if not self.adaptive or self._rate is None:
            return
        ceiling = self.max_rps
        if ceiling is not None and self._rate >= ceiling:
            self._last_raise = now
            return
        gained = (now - self._last_raise) * max(_INCREASE_PER_S, self._rate * _INCREASE_FRACTION)
        if gained >= 0.1:
            self._rate += gained
            if ceiling is not None:
                self._rate = min(self._rate, ceiling)
            self._last_raise = now

    def throttle(self, retry_after_s: float | None) -> None:
        """A 429 came back: pause everyone, and in adaptive mode slow down.

        The rate is cut at most once per ``_CUT_INTERVAL_S``: the requests that were in flight
        when the server began throttling all come back 429 together, and they are one signal.
        """
        self.throttled += 1
        now = time.monotonic()
        pause = retry_after_s if retry_after_s is not None else 0.0
        if self.adaptive and now - self._last_cut >= _CUT_INTERVAL_S:
            self._last_cut = now
            # unpaced so far: start pacing just under the rate that was observed; with no
            # usable observation (a 429 in the first moments of a run), only pause
            base = self._rate if self._rate is not None else self.observed_rps()
            if base is not None:
                self._rate = max(_ADAPTIVE_FLOOR, base * _DECREASE)
                self._last_raise = now + pause
        if retry_after_s is None and self._rate is not None:
            pause = max(pause, 1.0 / self._rate)
        # paced slots are taken after this too: _wait_turn starts no slot before the pause ends
        self._paused_until = max(self._paused_until, now + pause)
