"""What the simulator answered: counts per endpoint, status and fault, plus a request log.

Written by the server's event-loop thread, read by tests from theirs: every access holds a
lock. A dropped connection is counted with status 0.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import NamedTuple

ENDPOINTS = ("list", "detail", "batches", "batch", "statistics", "unknown")


class RequestRecord(NamedTuple):
    endpoint: str
    status: int
    fault: str | None = None
    execute_uuid: str | None = None
    batch_index: int | None = None
    marker: int | None = None
    limit: int | None = None
    #: when the request arrived, on the simulator's ``time.monotonic()``
    at: float = 0.0


class Stats:
    """Thread-safe request counters; ``reset()`` clears them."""

    def __init__(self, *, keep: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        self._records: deque[RequestRecord] = deque(maxlen=keep)
        self._by_endpoint_status: Counter[tuple[str, int]] = Counter()
        self._faults: Counter[str] = Counter()

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            self._by_endpoint_status[record.endpoint, record.status] += 1
            if record.fault is not None:
                self._faults[record.fault] += 1

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._by_endpoint_status.clear()
            self._faults.clear()

    def count(self, endpoint: str | None = None, status: int | None = None) -> int:
        """Requests answered, optionally only of one endpoint and/or one status."""
        with self._lock:
            return sum(
                n
                for (e, s), n in self._by_endpoint_status.items()
                if (endpoint is None or e == endpoint) and (status is None or s == status)
            )

    @property
    def total(self) -> int:
        return self.count()

    def by_endpoint(self) -> dict[str, int]:
        with self._lock:
            out: Counter[str] = Counter()
            for (endpoint, _), n in self._by_endpoint_status.items():
                out[endpoint] += n
            return dict(out)

    def by_status(self) -> dict[int, int]:
        with self._lock:
            out: Counter[int] = Counter()
            for (_, status), n in self._by_endpoint_status.items():
                out[status] += n
            return dict(out)

    def faults(self) -> dict[str, int]:
        with self._lock:
            return dict(self._faults)

    def records(self) -> list[RequestRecord]:
        """The most recent requests (up to ``keep``), oldest first."""
        with self._lock:
            return list(self._records)

    def snapshot(self) -> dict[str, object]:
        return {
            "total": self.total,
            "by_endpoint": self.by_endpoint(),
            "by_status": self.by_status(),
            "faults": self.faults(),
        }
