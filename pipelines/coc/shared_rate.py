"""The account's request budget, shared through Redis by every run on every machine.

``COC_MAX_RPS`` is the budget of the whole account, not of one process. With ``COC_REDIS_URL``
set, every request of every run takes the next free slot of one schedule kept in Redis, one
key per account (endpoint, AK, project)::

    now  = Redis TIME                      one clock for all machines
    slot = max(now, next)                  the next free slot, or now if the budget is idle
    next = slot + 1/COC_MAX_RPS            the slot after it
    wait = slot - now                      the caller sleeps this long, then sends

The three steps run as one Lua script, so two callers never get the same slot. A slot costs
one round trip to Redis (well under a millisecond on a LAN); the key expires when no run uses
it. The per-run gate (``gate.py``) still paces, caps concurrency and pauses after a 429; this
budget is one more wait in front of each request.

What it holds, in any window of one second: at most ``COC_MAX_RPS x (1 + LATE_S) + 1``
requests leave, all runs together. A caller that wakes more than ``LATE_S`` after its slot
(its process stalled: a pause, a swap, a long garbage collection, ``SIGSTOP``) does not send
on the stale slot, which would put it beside the requests of the slots after it: it takes a
fresh one. Each request thus leaves within ``LATE_S`` of a slot of its own, and the slots are
``1/COC_MAX_RPS`` apart. (Requests already past their slot and being sent when the stall
began still go when it ends: a few per run at most.)

Redis away (a restart, a failover): ``take`` tries again, backing off up to a second, for
``outage_s`` (``OUTAGE_S`` by default), then raises :class:`RedisUnavailableError` naming
``COC_REDIS_URL`` without its password. A Redis that restarts empty starts the schedule again
from "now": the slots already handed out are honoured, the next ones follow them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pipelines.coc.errors import ConfigError
from pipelines.errors import StorageError

__all__ = [
    "LATE_S",
    "OUTAGE_S",
    "RedisUnavailableError",
    "SharedRateBudget",
    "budget_key",
    "is_redis_outage",
    "redacted_url",
]

log = logging.getLogger(__name__)

#: microseconds: the script works in integers, Redis's TIME is seconds and microseconds
_US = 1_000_000
#: the schedule key outlives its last slot by this long, then Redis drops it
_IDLE_TTL_MS = 60_000
#: seconds: a caller that wakes later than this after its slot takes a fresh slot
LATE_S = 0.05
#: seconds: how long a run rides out Redis being unreachable before it fails
OUTAGE_S = 30.0
#: the longest pause between two attempts to reach Redis again, seconds
_OUTAGE_BACKOFF_MAX_S = 1.0

_TAKE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, nxt)
redis.call('SET', KEYS[1], slot + tonumber(ARGV[1]), 'PX', tonumber(ARGV[2]))
return slot - now
"""


class RedisUnavailableError(StorageError):
    """Redis (``COC_REDIS_URL``) stayed unreachable longer than a run may wait for it: the
    day's lease or the account's budget could not be kept (exit 4, like a store that does
    not answer)."""


def is_redis_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis could not be reached (worth waiting for), not a bad reply."""
    import redis.exceptions as rexc

    return isinstance(exc, rexc.ConnectionError | rexc.TimeoutError | ConnectionError)


def budget_key(endpoint: str, ak: str | None, project_id: str | None) -> str:
    """The Redis key of one account's schedule (a hash: no AK in Redis key listings)."""
    account = "\n".join((endpoint.rstrip("/"), ak or "", project_id or ""))
    return "coc:rate:" + hashlib.sha256(account.encode()).hexdigest()[:24]


def redacted_url(url: str) -> str:
    """``url`` without a password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class SharedRateBudget:
    """``max_rps`` requests a second for everyone who shares ``key`` on the Redis at ``url``.

    Open it inside the running event loop (``async with``); ``take`` waits for the caller's
    slot. ``sleep`` and ``clock`` are injected so tests can count the waits.
    """

    def __init__(
        self,
        url: str,
        *,
        key: str,
        max_rps: float,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        outage_s: float | None = None,
    ) -> None:
        if not max_rps > 0:
            raise ConfigError(f"a shared rate budget needs COC_MAX_RPS > 0, got {max_rps}")
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"COC_REDIS_URL must be a redis:// URL, got {redacted_url(url)!r}")
        self.url, self.key, self.max_rps = url, key, max_rps
        self._interval_us = max(1, round(_US / max_rps))
        self._sleep, self._clock = sleep, clock
        self.outage_s = OUTAGE_S if outage_s is None else outage_s
        self._redis: Any = None
        self._script: Any = None
        self.waited_s = 0.0
        self.slots = 0
        #: slots a stalled caller woke too late for, and took again
        self.missed = 0
        #: times Redis was unreachable and the budget waited for it
        self.outages = 0
        self._outage = False

    async def __aenter__(self) -> SharedRateBudget:
        import redis.asyncio as aioredis  # only deployments with COC_REDIS_URL need it
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._redis = aioredis.Redis.from_url(  # its own retries off: ``take`` rides outages
            self.url, socket_connect_timeout=5, socket_timeout=5, retry=Retry(NoBackoff(), 0)
        )
        self._script = self._redis.register_script(_TAKE_SLOT)
        try:
            await self._redis.ping()
        except Exception as exc:
            await self._redis.aclose()
            raise ConfigError(
                f"COC_REDIS_URL {redacted_url(self.url)}: cannot reach Redis ({type(exc).__name__})"
            ) from None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def take(self) -> None:
        """Wait for this request's slot in the account's schedule."""
        if self._script is None:
            raise RuntimeError("SharedRateBudget.take outside `async with`")
        while True:
            wait_us = await self._next_slot_us()
            self.slots += 1
            if wait_us <= 0:
                return
            due = self._clock() + wait_us / _US
            self.waited_s += wait_us / _US
            await self._sleep(wait_us / _US)
            if self._clock() - due <= LATE_S:
                return
            self.missed += 1  # stalled past the slot: sending now would burst

    async def _next_slot_us(self) -> int:
        """The wait before the next free slot, riding out a Redis outage of ``outage_s``."""
        started: float | None = None
        pause = 0.1
        while True:
            try:
                wait_us = int(
                    await self._script(keys=[self.key], args=[self._interval_us, _IDLE_TTL_MS])
                )
                self._outage = False
                return wait_us
            except Exception as exc:
                if not is_redis_outage(exc):
                    raise
                now = self._clock()
                if started is None:
                    started = now
                if not self._outage:  # said once per outage, not by every waiting request
                    self._outage = True
                    self.outages += 1
                    log.warning(
                        "COC_REDIS_URL %s: Redis unreachable (%s); the request budget waits "
                        "for it up to %gs",
                        redacted_url(self.url),
                        type(exc).__name__,
                        self.outage_s,
                    )
                if now - started >= self.outage_s:
                    raise RedisUnavailableError(
                        f"COC_REDIS_URL {redacted_url(self.url)}: Redis unreachable for "
                        f"{now - started:.0f}s ({type(exc).__name__}) while taking a slot of "
                        "the request budget"
                    ) from None
                await self._sleep(min(pause, self.outage_s - (now - started)))
                pause = min(pause * 2, _OUTAGE_BACKOFF_MAX_S)
