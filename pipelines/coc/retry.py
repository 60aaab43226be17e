"""Which failures are worth another attempt, and how long to wait before it.

``is_retriable`` is the single decision point. Delays use exponential backoff with full
jitter (AWS architecture blog, "Exponential Backoff And Jitter"), capped, unless the server
said when to come back with ``Retry-After`` (seconds or an HTTP date).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from pipelines.coc.errors import ApiError, ResponseError, TransportError

RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: a 2xx body that did not decode is tried again at most this many times
RESPONSE_ERROR_ATTEMPTS = 3


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    max_attempts: int = 8
    budget_s: float = 600.0
    base_s: float = 0.25
    cap_s: float = 20.0
    max_retry_after_s: float = 120.0


def is_retriable(exc: BaseException) -> bool:
    """True for 429, 500, 502, 503, 504, connection failures, time-outs and garbled bodies."""
    if isinstance(exc, ApiError):
        return exc.status in RETRIABLE_STATUSES
    if isinstance(exc, TransportError | ResponseError):
        return True
    return isinstance(exc, httpx.TransportError)


def backoff_s(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Full-jitter delay before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    ceiling = min(policy.cap_s, policy.base_s * (2 ** min(attempt - 1, 64)))  # no overflow
    return (rng or random).uniform(0, ceiling)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
