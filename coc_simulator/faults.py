"""Faults the simulator injects, changeable while the server runs.

Tests set the fields directly (``sim.faults.error_rate = 0.5``) or several at once under the
lock with ``update(...)``; ``reset()`` turns everything off and reseeds. Random choices come
from ``random.Random(seed)``, so a run with the same requests in the same order draws the
same faults.

Per request, in this order (after authentication, which answers 401 first):

1. ``latency_ms`` is added to every answer;
2. ``queued``: the next requests get these statuses, one each (a deterministic script);
3. ``rate_limit``: a token bucket (``rate_burst`` tokens, refilled at ``rate_limit``/s);
   an empty bucket answers 429, with ``Retry-After`` (whole seconds: ``retry_after_s``, or
   the wait rounded up) unless ``retry_after`` is False;
4. ``drop_rate``: the connection is cut: headers with a ``Content-Length`` and half the body
   (``drop_mode="mid_body"``) or no body at all (``"headers_only"``), then a close;
5. ``error_rate``: one of ``error_statuses`` (default 500, 502, 503, 504);
6. ``forced``: ``{execute_uuid: status}`` answers that status on every endpoint of the ticket;
7. the endpoint itself, where ``page_clamp`` caps every page (list and batch) at N records
   whatever ``limit`` asked, and ``stuck`` ``{(execute_uuid, batch_index)}`` makes every page
   after the first of that batch ignore the marker (the first page again), and
   ``batch_totals`` ``{(execute_uuid, batch_index): n}`` states ``n`` as that batch's
   ``total_instances`` on every one of its pages (a total that contradicts the pages);
8. ``invalid_body_rate``: a 200 whose body is not JSON.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: Huawei-style error bodies by status: (error_code, error_msg).
ERRORS: dict[int, tuple[str, str]] = {
    400: ("COC.00040001", "Invalid request parameter"),
    401: ("APIGW.0301", "Incorrect IAM authentication information"),
    403: ("COC.00040003", "No permission to access this resource"),
    404: ("COC.00040004", "The requested resource does not exist"),
    405: ("APIGW.0101", "The API does not exist or has not been published in the environment"),
    429: ("APIGW.0308", "The throttling threshold has been reached: policy user over ratelimit"),
    500: ("COC.00050000", "Internal server error"),
    502: ("APIGW.0202", "Bad gateway: the backend is unavailable"),
    503: ("APIGW.0203", "Service unavailable: the backend is overloaded"),
    504: ("APIGW.0204", "Gateway timeout: the backend did not answer in time"),
}
INVALID_BODIES = (
    b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
    b'{"data": {"batch_index": 1, "total_instances": 3, "execute_instan',
    b"upstream connect error or disconnect/reset before headers",
)


@dataclass(frozen=True, slots=True)
class FaultAnswer:
    """What to answer instead of the endpoint: a status (with headers) or a dropped
    connection (``drop`` set to the mode)."""

    kind: str  # queued | rate_limited | dropped | error | forced
    status: int
    headers: tuple[tuple[bytes, bytes], ...] = ()
    drop: str | None = None


@dataclass(kw_only=True)
class Faults:
    seed: int = 0
    latency_ms: float = 0.0
    queued: deque[int] = field(default_factory=deque)
    rate_limit: float | None = None
    rate_burst: float | None = None
    retry_after: bool = True
    retry_after_s: int | None = None
    drop_rate: float = 0.0
    drop_mode: str = "mid_body"
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503, 504)
    forced: dict[str, int] = field(default_factory=dict)
    stuck: set[tuple[str, int]] = field(default_factory=set)
    batch_totals: dict[tuple[str, int], int] = field(default_factory=dict)
    page_clamp: int | None = None
    invalid_body_rate: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._tokens = 0.0
        self._refilled = 0.0
        self._bucket: tuple[float | None, float | None] = (None, None)

    def update(self, **changes: Any) -> None:
        """Change several knobs at once, atomically with respect to requests."""
        with self._lock:
            for name, value in changes.items():
                if name.startswith("_") or not hasattr(self, name):
                    raise AttributeError(f"Faults has no knob {name!r}")
                setattr(self, name, value)
            if "seed" in changes:
                self._rng = random.Random(self.seed)

    def reset(self, seed: int | None = None) -> None:
        """Every knob off; reseed (with ``seed`` or the current one)."""
        fresh = Faults(seed=self.seed if seed is None else seed)
        with self._lock:
            for name in fresh.__dataclass_fields__:
                setattr(self, name, getattr(fresh, name))
            self._rng = random.Random(self.seed)
            self._bucket = (None, None)

    def queue(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, one each, in order."""
        with self._lock:
            self.queued.extend(statuses)

    @property
    def active(self) -> bool:
        return bool(
            self.latency_ms
            or self.queued
            or self.rate_limit is not None
            or self.drop_rate
            or self.error_rate
            or self.forced
            or self.stuck
            or self.batch_totals
            or self.page_clamp is not None
            or self.invalid_body_rate
        )

    def decide(self, *, execute_uuid: str | None = None) -> FaultAnswer | None:
        """The fault answer for the request about to be served, if any (steps 2-6)."""
        with self._lock:
            if self.queued:
                status = self.queued.popleft()
                return FaultAnswer(kind="queued", status=status, headers=self._retry(status, 1))
            if self.rate_limit is not None:
                wait = self._take_token(time.monotonic())
                if wait > 0:
                    return FaultAnswer(
                        kind="rate_limited", status=429, headers=self._retry(429, wait)
                    )
            if self.drop_rate and self._rng.random() < self.drop_rate:
                return FaultAnswer(kind="dropped", status=0, drop=self.drop_mode)
            if self.error_rate and self._rng.random() < self.error_rate:
                status = self.error_statuses[self._rng.randrange(len(self.error_statuses))]
                return FaultAnswer(kind="error", status=status)
        if execute_uuid is not None and execute_uuid in self.forced:
            return FaultAnswer(kind="forced", status=self.forced[execute_uuid])
        return None

    def invalid_body(self) -> bytes | None:
        """A non-JSON body to send instead of a good 200, if this one is to be spoiled."""
        if not self.invalid_body_rate:
            return None
        with self._lock:
            if self._rng.random() < self.invalid_body_rate:
                return INVALID_BODIES[self._rng.randrange(len(INVALID_BODIES))]
        return None

    def _retry(self, status: int, wait_s: float) -> tuple[tuple[bytes, bytes], ...]:
        if status not in (429, 503) or not self.retry_after:
            return ()
        seconds = self.retry_after_s if self.retry_after_s is not None else math.ceil(wait_s)
        return ((b"retry-after", str(max(0, seconds)).encode()),)

    def _take_token(self, now: float) -> float:
        """Take a token; 0 if there was one, else the seconds until the next one."""
        rate = self.rate_limit or 0.0
        burst = self.rate_burst if self.rate_burst is not None else max(1.0, rate)
        if self._bucket != (self.rate_limit, self.rate_burst):
            self._bucket = (self.rate_limit, self.rate_burst)
            self._tokens, self._refilled = burst, now
        self._tokens = min(burst, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / rate if rate > 0 else 1.0
