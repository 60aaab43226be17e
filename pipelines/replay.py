"""Replay: a day's tables, and its schema drift, derived again from its raw archive.

The day's archive (``pipelines/raw_archive.py``) answers the client through a
``ReplayTransport``: the same walk, the same paging checks and the same flattening run as in
the original ingestion, so the output is the original run's, and not one request leaves the
process (the client's endpoint is a closed loopback port it never dials). The archive itself
is kept as it was published; the day's other tables are replaced together, as by an ingest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import date

from pipelines.coc.client import CocClient
from pipelines.coc.settings import ClientSettings
from pipelines.ingest import DayResult, _shared_day_lock, gc_frozen, ingest_day
from pipelines.load import FLUSH_ROWS
from pipelines.parquet import warehouse_publisher
from pipelines.raw_archive import ArchivedDay, ReplayTransport, load_archive
from pipelines.settings import WarehouseSettings

#: never dialled: the transport answers every request from the archive
NO_ENDPOINT = "http://127.0.0.1:9"
#: requests in flight through the replay transport (no network: a wide pipe is free)
REPLAY_CONCURRENCY = 32


def replay_settings(*, concurrency: int = REPLAY_CONCURRENCY) -> ClientSettings:
    """A client that never waits: no rate cap, one attempt, httpx's own transport slot."""
    return ClientSettings(
        endpoint=NO_ENDPOINT,
        max_rps=None,
        adaptive=False,
        concurrency=concurrency,
        max_attempts=1,
        transport="httpx",
    )


def check_archived(warehouse: WarehouseSettings, days: Sequence[date]) -> dict[date, ArchivedDay]:
    """Every day's archive, loaded before anything is written; ``ConfigError`` naming the
    first day without one."""
    publisher = warehouse_publisher(warehouse)
    return {day: load_archive(publisher.fs, publisher.root, day) for day in days}


async def replay_days_async(
    warehouse: WarehouseSettings,
    days: Sequence[date],
    *,
    report: Callable[[str], None] | None = None,
    on_day: Callable[[DayResult], None] | None = None,
    flush_rows: int = FLUSH_ROWS,
) -> list[DayResult]:
    """Replay several days, one after another; stops at the first day that fails."""
    publisher = warehouse_publisher(warehouse)
    results = []
    with gc_frozen():
        for day in days:
            archive = load_archive(publisher.fs, publisher.root, day)
            transport = ReplayTransport(archive)
            async with (
                CocClient(replay_settings(), transport=transport) as client,
                _shared_day_lock(warehouse, day),
            ):
                result = await ingest_day(
                    client,
                    day=day,
                    warehouse=warehouse,
                    report=report,
                    flush_rows=flush_rows,
                    replay=archive,
                )
            if on_day is not None:
                on_day(result)
            results.append(result)
    return results


def replay_days(
    warehouse: WarehouseSettings, days: Sequence[date], **kwargs: object
) -> list[DayResult]:
    """Synchronous entry point: runs ``replay_days_async`` in a fresh event loop."""
    return asyncio.run(replay_days_async(warehouse, days, **kwargs))  # type: ignore[arg-type]
