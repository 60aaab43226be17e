"""One gate every request of a run passes: a concurrency cap and a request-rate pacer.

The pacer spaces requests evenly at ``1/rate`` seconds (a token bucket with a burst of one),
so a server that allows R requests/s sees at most R. After a 429 everyone pauses, not just the
task that was throttled: the pause moves the shared schedule. In adaptive mode the rate is
also cut on a 429 and crept back up while none comes (AIMD), so a run with no configured cap
settles just under what the server allows:

* the cut starts from the lower of the pacing rate and the rate the server has been
  accepting (answers other than 429 over the last seconds, counted over at least one
  second, since gateways meter per second): an unpaced run that meets its first 429 starts
  pacing near the server's rate at once, instead of bursting into the limit again after
  the pause;
* the rate climbs back quickly to just under where the last 429 came, then probes above it
  slowly, so that 429s stay rare (the README's Performance section has the share measured).

With a shared budget (``shared_rate.py``: the account's ``COC_MAX_RPS`` split among every run
at once through Redis) each request also waits for its slot there, after this run's own turn.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

#: the lowest pacing rate adaptive mode goes to, requests/s
_ADAPTIVE_FLOOR = 1.0
_DECREASE = 0.9
#: requests/s added per second of unthrottled running below the last 429's rate: at least
#: this many, or this fraction of the current rate, whichever is more ...
_INCREASE_PER_S = 0.5
_INCREASE_FRACTION = 0.05
#: ... up to this fraction of the rate where the last 429 came; above it, this fraction a second
_PLATEAU = 0.95
_PROBE_FRACTION = 0.01
#: 429s closer together than this are one congestion signal
_CUT_INTERVAL_S = 1.0
#: the accepted rate is measured over this window, and over no less than a second
_ACCEPTED_WINDOW_S = 2.0
_ACCEPTED_MIN_COUNT = 10


class RateBudget(Protocol):
    """A request budget shared with other runs: ``take`` returns when this request may go."""

    async def take(self) -> None: ...


class RequestGate:
    """Shared by all calls of one run; create it inside the running event loop.

    ``clock`` (seconds, monotonic) and ``sleep`` are the gate's only sense of time: tests pass
    a fake pair and see the pacing and the pauses without waiting for them.
    """

    def __init__(
        self,
        *,
        max_rps: float | None,
        concurrency: int,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        budget: RateBudget | None = None,
    ):
        self.max_rps = max_rps
        self.budget = budget
        self.adaptive = adaptive
        self._clock = clock
        self._sleep = sleep
        self._rate: float | None = max_rps
        self._semaphore = asyncio.Semaphore(concurrency)
        self._next_slot = 0.0
        self._last_raise = clock()
        self.throttled = 0
        self._paused_until = 0.0
        self._last_cut = -_CUT_INTERVAL_S
        #: the rate at which the last 429 came (the cut started from it)
        self._congested_at: float | None = None
        self._accepted: deque[float] = deque(maxlen=4096)

    @property
    def rate(self) -> float | None:
        """The pacing rate now, requests/s; ``None`` when unpaced."""
        return self._rate

    @property
    def paused_until(self) -> float:
        """When the shared pause after the last 429 ends, on the gate's clock."""
        return self._paused_until

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._semaphore:
            await self._wait_turn()
            if self.budget is not None:
                await self.budget.take()
            yield

    def accepted(self) -> None:
        """An answer other than 429 came back: evidence of the rate the server accepts."""
        self._accepted.append(self._clock())

    def accepted_rps(self, now: float | None = None) -> float | None:
        """Answers accepted per second over the last ``_ACCEPTED_WINDOW_S``, counted over at
        least one second (a burst in the first moments is not a rate); None on fewer than
        ``_ACCEPTED_MIN_COUNT`` answers."""
        now = self._clock() if now is None else now
        recent = [t for t in self._accepted if now - t <= _ACCEPTED_WINDOW_S]
        if len(recent) < _ACCEPTED_MIN_COUNT:
            return None
        return len(recent) / max(now - recent[0], 1.0)

    async def _wait_turn(self) -> None:
        while True:
            now = self._clock()
            if self._rate is None:
                wait = self._paused_until - now
            else:
                self._recover(now)
                slot = max(now, self._next_slot, self._paused_until)
                self._next_slot = slot + 1.0 / self._rate
                wait = slot - now
            if wait <= 0:
                break
            await self._sleep(wait)
            if self._clock() >= self._paused_until:
                break
            # a 429 arrived while this task waited: queue again behind the shared pause

    def _recover(self, now: float) -> None:
        if not self.adaptive or self._rate is None:
            return
        ceiling = self.max_rps
        if ceiling is not None and self._rate >= ceiling:
            self._last_raise = now
            return
        elapsed = now - self._last_raise
        plateau = None if self._congested_at is None else _PLATEAU * self._congested_at
        if plateau is not None and self._rate < plateau:  # climb back quickly, to the plateau
            per_s = max(_INCREASE_PER_S, self._rate * _INCREASE_FRACTION)
            rate = min(plateau, self._rate + elapsed * per_s)
        else:  # near where the server said no: probe gently
            rate = self._rate + elapsed * self._rate * _PROBE_FRACTION
        # small steps wait to add up (the time since the last raise keeps growing), except
        # the last one onto the plateau
        if rate - self._rate >= 0.1 or (rate == plateau and rate > self._rate):
            self._rate = rate if ceiling is None else min(rate, ceiling)
            self._last_raise = now

    def throttle(self, retry_after_s: float | None) -> None:
        """A 429 came back: pause everyone, and in adaptive mode slow down.

        The rate is cut at most once per ``_CUT_INTERVAL_S``: the requests that were in flight
        when the server began throttling all come back 429 together, and they are one signal.
        """
        self.throttled += 1
        now = self._clock()
        pause = retry_after_s if retry_after_s is not None else 0.0
        if self.adaptive and now - self._last_cut >= _CUT_INTERVAL_S:
            self._last_cut = now
            # the lower of the pacing rate and what the server has been accepting; with
            # neither (a 429 before ten answers came back), only pause
            known = [r for r in (self._rate, self.accepted_rps(now)) if r is not None]
            if known:
                self._congested_at = min(known)
                self._rate = max(_ADAPTIVE_FLOOR, self._congested_at * _DECREASE)
                self._last_raise = now + pause
        if retry_after_s is None and self._rate is not None:
            pause = max(pause, 1.0 / self._rate)
        # paced slots are taken after this too: _wait_turn starts no slot before the pause ends
        self._paused_until = max(self._paused_until, now + pause)
