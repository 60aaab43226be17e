"""Replay: a day's tables, and its schema drift, derived again from its raw archive.

The day's archive (``pipelines/lake/raw_archive.py``) answers an ``ArchiveClient``: the client
with its one request path (``_attempt``) reading the archive instead of the network, so the
same walk, the same paging checks, decoding and flattening run as in the original ingestion,
the output is the original run's, and not one request leaves the process (no connection is
ever opened; the endpoint is a closed loopback port, in case). The archive itself
is kept as it was published; the day's other tables are replaced together, as by an ingest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import msgspec

from pipelines.coc import errors
from pipelines.coc.client import CocClient
from pipelines.coc.models import DECODE_ERRORS, describe_bad_body
from pipelines.coc.settings import ClientSettings
from pipelines.ingest import DayResult, gc_frozen, ingest_day, shared_day_lock
from pipelines.lake.day_writer import warehouse_publisher
from pipelines.lake.load import FLUSH_ROWS
from pipelines.lake.raw_archive import ArchivedDay, archive_files, load_archive
from pipelines.settings import WarehouseSettings

#: never dialled: the archive answers every request
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


class ArchiveClient(CocClient):
    """The COC client answered by an archived day: ``_attempt`` looks the request up."""

    def __init__(self, archive: ArchivedDay) -> None:
        super().__init__(replay_settings())
        self.archive = archive

    async def _attempt(
        self,
        endpoint: str,
        path: str,
        params: Sequence[tuple[str, str]],
        decoder: msgspec.json.Decoder,
        where: errors.Where,
    ) -> Any:
        self.metrics.sent(endpoint)
        body = self.archive.body(path, params, where, endpoint)
        self.metrics.bytes_received += len(body)
        try:
            data = decoder.decode(body).data
        except DECODE_ERRORS as exc:
            raise errors.ResponseError(
                f"{endpoint} (archived): {describe_bad_body(body, exc)}", path=path, **where
            ) from None
        if self.on_response is not None:
            self.on_response(endpoint, path, params, where, 200, body)
        return data, body


def check_archived(warehouse: WarehouseSettings, days: Sequence[date]) -> None:
    """Every day has an archive, checked through its log before anything is written (not
    read: each day's is read when its turn comes); ``ArchiveMissingError`` (exit 2) naming
    the first day without one."""
    lake = warehouse_publisher(warehouse).lake
    for day in days:
        archive_files(lake, day)


def _load(warehouse: WarehouseSettings, day: date) -> ArchivedDay:
    publisher = warehouse_publisher(warehouse)
    return load_archive(publisher.lake, publisher.fs, publisher.root, day)


async def replay_days_async(
    warehouse: WarehouseSettings,
    days: Sequence[date],
    *,
    report: Callable[[str], None] | None = None,
    on_day: Callable[[DayResult], None] | None = None,
    flush_rows: int = FLUSH_ROWS,
    run_id: str | None = None,
) -> list[DayResult]:
    """Replay several days, one after another; stops at the first day that fails.

    ``run_id`` names this run in the shared day lease (a Dagster run passes its own)."""
    results = []
    with gc_frozen():
        for day in days:
            archive = _load(warehouse, day)
            async with (
                ArchiveClient(archive) as client,
                shared_day_lock(warehouse, day, run_id=run_id, on_wait=report),
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
