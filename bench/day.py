"""The simulated day every measurement ingests, its truth, and the simulator that serves it.

A benchmark day is ``2026-11-25`` (UTC) of a two-day simulated span fixed at
``2026-11-26T12:00:00Z``, with exactly ``instances`` instances (``SimConfig.instances_per_day``).
``Dataset`` gives the same deterministic data in-process as the simulator serves, so the
bench knows the minimal requests, every page URL and every marker without asking the server.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from coc_simulator.data import Dataset, SimConfig, Ticket
from coc_simulator.server import start_subprocess, stop_subprocess
from pipelines.coc.settings import DEFAULT_LIST_LIMIT, DEFAULT_PAGE_LIMIT
from pipelines.extract.walk import day_window

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DAY = date(2026, 11, 25)
UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True, kw_only=True)
class BenchDay:
    """One day of a dataset, seen as the product asks for it (``end_time`` = end of day)."""

    dataset: Dataset
    day: date = DAY
    tz: ZoneInfo = UTC_ZONE

    @property
    def window(self) -> tuple[int, int]:
        return day_window(self.day, self.tz)

    @property
    def tickets(self) -> list[Ticket]:
        start, end = self.window
        return self.dataset.tickets_in_window(start, end)

    @property
    def instances(self) -> int:
        return self.dataset.instance_count(*self.window)

    def minimal_requests(
        self,
        *,
        list_limit: int = DEFAULT_LIST_LIMIT,
        page_limit: int = DEFAULT_PAGE_LIMIT,
        query_end_ms: int | None = None,
    ) -> int:
        """The minimum of a verifying walk: list pages + 2 per ticket + n // limit + 1 per
        non-empty batch (up to the first page that is not full).

        ``query_end_ms`` is the ``end_time`` the client sends: the product sends the end of
        the day (the server's window is inclusive) and drops the boundary ticket itself."""
        start, end = self.window
        return self.dataset.minimal_requests(
            start,
            end,
            list_limit=list_limit,
            page_limit=page_limit,
            query_end_ms=end if query_end_ms is None else query_end_ms,
        )

    def batches_at_page_multiples(self, page_limit: int) -> int:
        """Non-empty batches whose size is a multiple of the page size (no short last page)."""
        return sum(
            1 for t in self.tickets for b in t.batches if b.size and b.size % page_limit == 0
        )


def sized_config(instances: int) -> SimConfig:
    return SimConfig(instances_per_day=instances, days=2, now=NOW)


def sized_day(instances: int) -> BenchDay:
    return BenchDay(dataset=Dataset(sized_config(instances)))


def instances_for_minimal(target: int, *, low: int = 100, high: int = 2_000_000) -> int:
    """The instances per day whose minimal requests come closest to ``target``."""
    best, best_gap = low, math.inf
    while low <= high:
        mid = (low + high) // 2
        minimal = sized_day(mid).minimal_requests()
        gap = abs(minimal - target)
        if gap < best_gap:
            best, best_gap = mid, gap
        if minimal < target:
            low = mid + 1
        elif minimal > target:
            high = mid - 1
        else:
            return mid
    return best


def _cache_mb(instances: int) -> int:
    """Room for every rendered page of the day (about 0.9 KiB an instance), and spare."""
    return 64 + instances * 1_200 // 2**20


@dataclass(frozen=True)
class SimulatorProcess:
    url: str
    pid: int


@contextmanager
def simulator_process(
    instances: int, *, log: Path, extra: tuple[str, ...] = ()
) -> Iterator[SimulatorProcess]:
    """A simulator of ``sized_config(instances)`` in another process (so that it does not
    share the client's GIL), its day pre-rendered."""
    args = [
        "--instances-per-day",
        str(instances),
        "--days",
        "2",
        "--now",
        NOW.isoformat().replace("+00:00", "Z"),
        "--warm",
        DAY.isoformat(),
        "--cache-mb",
        str(_cache_mb(instances)),
        *extra,
    ]
    with open(log, "w") as stderr:
        process, url = start_subprocess(args, stderr=stderr, timeout=300)
        try:
            yield SimulatorProcess(url=url, pid=process.pid)
        finally:
            stop_subprocess(process)


def run_quietly(command: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a child process to completion, capturing its output."""
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
