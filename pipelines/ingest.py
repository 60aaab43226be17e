"""One day of COC into the warehouse: walk the day, flatten pages, stream Parquet, swap it in.

``ingest_days`` is what the Dagster assets and the CLI call. It opens one client (one
connection pool, one rate gate) for all the days of a run and ingests them one after
another; each day is published whole or not at all.

The fetching event loop decodes only the ids and totals it needs for paging and hands each
kept page body to an ``InstanceLoader``, whose one thread flattens chunks of them in Arrow and
writes Parquet row groups (``pipelines/lake/load.py``, ``pipelines/extract/pages.py``). Arrow
releases the GIL for nearly all of that work, so fetching and flattening share the machine's cores
from one process.

Every response body the walk uses also goes, as received, to the day's raw archive
(``pipelines/lake/raw_archive.py``), and is checked against the documented schema on the way
(``pipelines/transform/drift.py``); both are tables of the day, published with the three. A replay
(``pipelines/replay.py``) runs the same ``ingest_day`` with a client that the archive
answers. After each day, the archive's days past ``COC_ARCHIVE_RETENTION_DAYS`` go.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import httpx

from pipelines.coc.client import CocClient
from pipelines.coc.metrics import RequestMetrics
from pipelines.coc.models import BatchSummary, Order, OrderDetail, RawPage
from pipelines.coc.settings import ClientSettings
from pipelines.extract.walk import TicketRead, WalkStats, walk_day
from pipelines.lake.day_writer import DayWriter, TableStats, new_run_id, warehouse_publisher
from pipelines.lake.load import FLUSH_ROWS, InstanceLoader
from pipelines.lake.raw_archive import DRIFT_TABLE, ArchivedDay, ResponseRecorder, drop_expired
from pipelines.locks.shared import LeaseLapsedError, SharedLease, day_lock_key
from pipelines.settings import WarehouseSettings
from pipelines.transform.flatten import batches_batch, orders_batch
from pipelines.transform.schemas import DAY_TABLES, DRIFT_TABLES, TABLES

log = logging.getLogger(__name__)

#: execute_uuid -> (ticket status, {batch_index: (total_instances, instances ingested)})
TicketLedger = dict[str, tuple[str | None, dict[int, tuple[int | None, int]]]]


@dataclass
class DayResult:
    """What one day's ingestion did."""

    day: date
    walk: WalkStats
    tables: dict[str, TableStats]
    #: what the day's requests cost
    http: RequestMetrics
    seconds: float
    tickets: TicketLedger = field(default_factory=dict)
    #: responses the day used, and their bodies' bytes (archived, or replayed from the archive)
    responses: int = 0
    body_bytes: int = 0
    #: the day's schema drift: (endpoint, field path, kind, count)
    drift: list[tuple[str, str, str, int]] = field(default_factory=list)
    replayed: bool = False

    @property
    def rows(self) -> int:
        return self.tables["execution_instances"].rows


class _Tickets:
    """The small tables, gathered as tickets complete: script_orders and order_batches."""

    def __init__(self) -> None:
        self.orders: list[tuple[Order, OrderDetail | None, int, int | None]] = []
        self.batches: list[tuple[str, BatchSummary, int]] = []
        self.ledger: TicketLedger = {}

    def ticket(self, read: TicketRead) -> None:
        totals = [b.total_instances for b in read.batches]
        total = None if any(t is None for t in totals) else sum(totals)  # type: ignore[arg-type]
        self.orders.append((read.order, read.detail, len(read.batches), total))
        per_batch: dict[int, tuple[int | None, int]] = {}
        for b in read.batches:
            ingested = read.ingested(b.batch_index)
            self.batches.append((read.execute_uuid, b, ingested))
            per_batch[b.batch_index] = (b.total_instances, ingested)
        self.ledger[read.execute_uuid] = (read.detail.status or read.order.status, per_batch)

    def tables(self) -> list[tuple[str, Any]]:
        return [
            ("script_orders", orders_batch(self.orders)),
            ("order_batches", batches_batch(self.batches)),
        ]


class _PageSink(_Tickets):
    """Kept batch pages, as received, to the loader that flattens and writes them; and the
    archive's buffer to the loader as it fills."""

    def __init__(self, loader: InstanceLoader, recorder: ResponseRecorder) -> None:
        super().__init__()
        self.loader = loader
        self.recorder = recorder

    def instances(self, execute_uuid: str, batch_index: int, page: RawPage) -> None:
        self.loader.add(execute_uuid, batch_index, page)
        self.recorder.flush_if_full()

    def ticket(self, read: TicketRead) -> None:
        super().ticket(read)
        self.recorder.flush_if_full()


async def ingest_day(
    client: CocClient,
    *,
    day: date,
    warehouse: WarehouseSettings,
    flush_rows: int = FLUSH_ROWS,
    progress_every: int = 50,
    report: Callable[[str], None] | None = None,
    replay: ArchivedDay | None = None,
) -> DayResult:
    """Walk ``day`` and publish its tables, its raw archive and its schema drift together;
    on any error the old partition stays.

    With ``replay`` (the day's archive, which ``client`` answers from), the archive is kept
    as published and the other tables are derived again from it.
    """
    started = time.monotonic()
    before = client.metrics.snapshot()
    tables = {**TABLES, **DRIFT_TABLES} if replay is not None else DAY_TABLES
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="flatten") as pool,
        DayWriter(
            publisher=warehouse_publisher(warehouse),
            day=day,
            tables=tables,
            row_group_rows=flush_rows,
            lock_timeout_s=warehouse.day_lock_timeout_s,
        ) as writer,
    ):
        loader = InstanceLoader(
            writer, pool, flush_rows, on_documented=replay.documented if replay else None
        )
        recorder = ResponseRecorder(
            day=day, submit=loader.add_job, archive=replay is None, replay=replay
        )
        sink = _PageSink(loader, recorder)
        client.on_response = recorder.on_response
        try:
            walk = await walk_day(
                client,
                day=day,
                tz=warehouse.tz,
                sink=sink,
                progress_every=progress_every,
                report=report,
            )
            recorder.flush()
            for name, batch in sink.tables():
                loader.add_table(name, batch)
            await asyncio.to_thread(loader.finish)
            loader.add_table(DRIFT_TABLE, recorder.drift_batch())
            await asyncio.to_thread(loader.finish)
        except BaseException:
            await asyncio.to_thread(loader.drain_quietly)
            raise
        finally:
            client.on_response = None
        written = await asyncio.to_thread(writer.commit)
    drift = recorder.drift.findings
    return DayResult(
        day=day,
        walk=walk,
        tables=written,
        http=client.metrics - before,
        seconds=time.monotonic() - started,
        tickets=sink.ledger,
        responses=recorder.responses,
        body_bytes=recorder.body_bytes,
        drift=[(e, p, k, f.count) for (e, p, k), f in sorted(drift.items())],
        replayed=replay is not None,
    )


async def ingest_days_async(
    settings: ClientSettings,
    warehouse: WarehouseSettings,
    days: Sequence[date],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    report: Callable[[str], None] | None = None,
    on_day: Callable[[DayResult], None] | None = None,
    flush_rows: int = FLUSH_ROWS,
    run_id: str | None = None,
) -> list[DayResult]:
    """Ingest several days with one client; stops at the first day that fails.

    ``run_id`` names this run in the shared day lease (a Dagster run passes its own), and
    ``report`` hears a wait for another run of a day, naming it.

    The warehouse is checked by the caller's pre-flight (``warehouse/preflight.py``: an
    ``s3://`` one's bucket, credentials and endpoint), once, before the COC API is asked
    anything.
    """
    results = []
    with gc_frozen():
        async with CocClient(settings, transport=transport) as client:
            for day in days:
                async with shared_day_lock(warehouse, day, run_id=run_id, on_wait=report):
                    result = await ingest_day(
                        client, day=day, warehouse=warehouse, report=report, flush_rows=flush_rows
                    )
                await asyncio.to_thread(apply_archive_retention, warehouse)
                if on_day is not None:
                    on_day(result)
                results.append(result)
    return results


def apply_archive_retention(
    warehouse: WarehouseSettings, *, run_id: str | None = None
) -> list[date]:
    """Remove the raw archive's days past ``archive_retention_days`` (after a publish).

    One Delta commit to ``raw_responses`` that deletes the old days (``drop_expired``): a
    day's archive is whole or gone for every reader, and the other tables are untouched;
    the build's vacuum deletes the files once past ``COC_VACUUM_RETENTION_HOURS``.
    """
    if warehouse.archive_retention_days is None:
        return []
    return drop_expired(
        warehouse_publisher(warehouse).lake,
        keep_days=warehouse.archive_retention_days,
        today=datetime.now(warehouse.tz).date(),
        run_id=run_id or new_run_id(),
    )


@contextlib.asynccontextmanager
async def shared_day_lock(
    warehouse: WarehouseSettings,
    day: date,
    *,
    run_id: str | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> AsyncIterator[None]:
    """With ``COC_REDIS_URL``: the day's lease every machine sees, around the day's writer
    (whose own lock excludes the runs of this machine)."""
    if warehouse.redis_url is None:
        yield
        return
    lease = SharedLease(
        warehouse.redis_url,
        key=day_lock_key(warehouse.warehouse, day.isoformat()),
        what=f"day {day.isoformat()} of {warehouse.warehouse}",
        run_id=run_id,
        on_wait=on_wait,
    )
    await asyncio.to_thread(lease.acquire)
    try:
        yield
        if lease.lost:
            raise LeaseLapsedError(lease.what)  # published, but maybe not alone: say so
    finally:
        await asyncio.to_thread(lease.release)


@contextlib.contextmanager
def gc_frozen() -> Iterator[None]:
    """The objects that exist before the run are left out of the cyclic collector's scans.

    In a Dagster run process they are hundreds of thousands (Dagster's own), and every full
    collection the run's allocations trigger would walk them all again (the README's
    Performance section says what freezing them saves). What the run itself allocates is
    collected as usual. Thawed afterwards, unless someone froze objects before us
    (``gc.freeze`` does not nest, and thawing would undo theirs).
    """
    already = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not already:
            gc.unfreeze()


def ingest_days(
    settings: ClientSettings,
    warehouse: WarehouseSettings,
    days: Sequence[date],
    **kwargs: Any,
) -> list[DayResult]:
    """Synchronous entry point: runs ``ingest_days_async`` in a fresh event loop."""
    return asyncio.run(ingest_days_async(settings, warehouse, days, **kwargs))
