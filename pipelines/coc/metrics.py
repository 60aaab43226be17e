"""What calls to the COC API cost, as a typed value with arithmetic.

One ``RequestMetrics`` is shared by every call of a client and counts as they go; what a part
of a run cost is the difference of two snapshots (``after - before``), and what several parts
cost is their sum (``sum(parts, RequestMetrics())``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(kw_only=True)
class RequestMetrics:
    """Requests sent, retries, and the failures that caused them; counts only, no secrets."""

    requests: int = 0
    retries: int = 0
    #: answers with HTTP 429
    throttled: int = 0
    #: answers with HTTP 5xx
    server_errors: int = 0
    #: connection failures, resets and time-outs
    transport_errors: int = 0
    #: 2xx answers whose body was not the documented JSON
    bad_bodies: int = 0
    bytes_received: int = 0
    #: requests per endpoint name (``get_batch``, ``list_orders``, ...)
    by_endpoint: dict[str, int] = field(default_factory=dict)

    def sent(self, endpoint: str) -> None:
        """Count one request to ``endpoint``."""
        self.requests += 1
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1

    def snapshot(self) -> RequestMetrics:
        """A copy that later counting does not change."""
        return dataclasses.replace(self, by_endpoint=dict(self.by_endpoint))

    def __add__(self, other: RequestMetrics) -> RequestMetrics:
        return self._combine(other, lambda a, b: a + b)

    def __sub__(self, other: RequestMetrics) -> RequestMetrics:
        return self._combine(other, lambda a, b: a - b)

    def _combine(self, other: object, op: Callable[[int, int], int]) -> RequestMetrics:
        if not isinstance(other, RequestMetrics):
            return NotImplemented
        counts = {
            f.name: op(getattr(self, f.name), getattr(other, f.name))
            for f in dataclasses.fields(self)
            if f.name != "by_endpoint"
        }
        endpoints = {
            name: op(self.by_endpoint.get(name, 0), other.by_endpoint.get(name, 0))
            for name in self.by_endpoint | other.by_endpoint
        }
        return RequestMetrics(**counts, by_endpoint={k: v for k, v in endpoints.items() if v})
