"""The account's request budget, shared through Redis by every run on every machine.

``COC_MAX_RPS`` is the budget of the whole account, not of one process. With ``COC_REDIS_URL``
set, every request of every run takes the next free slot of one schedule kept in Redis, one
key per account (endpoint, AK, project)::

    now  = Redis TIME                      one clock for all machines
    slot = max(now, next)                  the next free slot, or now if the budget is idle
    next = slot + 1/COC_MAX_RPS            the slot after it
    wait = slot - now                      the caller sleeps this long, then sends

The three steps run as one Lua script, so two callers never get the same slot: the runs
together send at most ``COC_MAX_RPS`` requests a second, evenly spaced, however many there
are. A slot costs one round trip to Redis (well under a millisecond on a LAN); the key
expires when no run uses it. The per-run gate (``gate.py``) still paces, caps concurrency
and pauses after a 429; this budget is one more wait in front of each request.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pipelines.coc.errors import ConfigError

__all__ = ["SharedRateBudget", "budget_key", "redacted_url"]

#: microseconds: the script works in integers, Redis's TIME is seconds and microseconds
_US = 1_000_000
#: the schedule key outlives its last slot by this long, then Redis drops it
_IDLE_TTL_MS = 60_000

_TAKE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, nxt)
redis.call('SET', KEYS[1], slot + tonumber(ARGV[1]), 'PX', tonumber(ARGV[2]))
return slot - now
"""


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
    slot. ``sleep`` is injected so tests can count the waits.
    """

    def __init__(
        self,
        url: str,
        *,
        key: str,
        max_rps: float,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if not max_rps > 0:
            raise ConfigError(f"a shared rate budget needs COC_MAX_RPS > 0, got {max_rps}")
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"COC_REDIS_URL must be a redis:// URL, got {redacted_url(url)!r}")
        self.url, self.key, self.max_rps = url, key, max_rps
        self._interval_us = max(1, round(_US / max_rps))
        self._sleep = sleep
        self._redis: Any = None
        self._script: Any = None
        self.waited_s = 0.0
        self.slots = 0

    async def __aenter__(self) -> SharedRateBudget:
        import redis.asyncio as aioredis  # only deployments with COC_REDIS_URL need it

        self._redis = aioredis.Redis.from_url(self.url, socket_connect_timeout=5)
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
        wait_us = int(await self._script(keys=[self.key], args=[self._interval_us, _IDLE_TTL_MS]))
        self.slots += 1
        if wait_us > 0:
            self.waited_s += wait_us / _US
            await self._sleep(wait_us / _US)
