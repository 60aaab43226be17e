"""One day of COC into the warehouse: walk the day, flatten pages, stream Parquet, swap it in.

``ingest_days`` is what the Dagster assets and the CLI call. It opens one client (one
connection pool, one rate gate) for all the days of a run and ingests them one after
another; each day is published whole or not at all.

Pages are flattened in the event loop as they arrive and handed, every ``flush_rows`` rows,
as a record batch to one writer thread that encodes and compresses Parquet while the next
pages are fetched. At most ``_MAX_PENDING_WRITES`` batches wait for that thread, so memory
stays bounded whatever the size of the day.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx

from pipelines.coc.client import CocClient
from pipelines.coc.models import BatchSummary, Instance, Order, OrderDetail
from pipelines.flatten import InstanceColumns, batches_batch, orders_batch
from pipelines.parquet import DayWriter, TableStats
from pipelines.settings import ClientSettings, WarehouseSettings
from pipelines.walk import TicketRead, WalkStats, walk_day

log = logging.getLogger(__name__)

FLUSH_ROWS = 50_000
_MAX_PENDING_WRITES = 2


@dataclass
class DayResult:
    """What one day's ingestion did."""

    day: date
    walk: WalkStats
    tables: dict[str, TableStats]
    requests: dict[str, Any]
    seconds: float
    run_id: str
    #: the day's tickets as read: execute_uuid -> (status, {batch_index: (total, ingested)})
    tickets: dict[str, tuple[str | None, dict[int, tuple[int | None, int]]]] = field(
        default_factory=dict
    )

    @property
    def rows(self) -> int:
        return self.tables["execution_instances"].rows


class _DayLoad:
    """The walk's sink: column buffers in the loop, Parquet writes in one thread."""

    def __init__(self, writer: DayWriter, pool: ThreadPoolExecutor, flush_rows: int) -> None:
        self.writer = writer
        self.pool = pool
        self.flush_rows = flush_rows
        self.columns = InstanceColumns()
        self.orders: list[tuple[Order, OrderDetail | None, int, int | None]] = []
        self.batches: list[tuple[str, BatchSummary, int]] = []
        self.tickets: dict[str, tuple[str | None, dict[int, tuple[int | None, int]]]] = {}
        self._pending: list[Future[None]] = []

    def instances(self, execute_uuid: str, batch_index: int, page: list[Instance]) -> None:
        self.columns.append(execute_uuid, batch_index, page)
        if self.columns.rows >= self.flush_rows:
            self._submit(self.columns.take())

    def ticket(self, read: TicketRead) -> None:
        totals = [b.total_instances for b in read.batches]
        total = None if any(t is None for t in totals) else sum(totals)  # type: ignore[arg-type]
        self.orders.append((read.order, read.detail, len(read.batches), total))
        per_batch: dict[int, tuple[int | None, int]] = {}
        for b in read.batches:
            ingested = read.ingested(b.batch_index)
            self.batches.append((read.execute_uuid, b, ingested))
            per_batch[b.batch_index] = (b.total_instances, ingested)
        self.tickets[read.execute_uuid] = (read.detail.status or read.order.status, per_batch)

    def _submit(self, batch: Any, table: str = "execution_instances") -> None:
        while len(self._pending) >= _MAX_PENDING_WRITES:
            self._pending.pop(0).result()  # back-pressure, and surface a write error now
        self._pending.append(self.pool.submit(self.writer.write, table, batch))

    def finish(self) -> None:
        if self.columns.rows:
            self._submit(self.columns.take())
        self._submit(orders_batch(self.orders), "script_orders")
        self._submit(batches_batch(self.batches), "order_batches")
        self.drain()

    def drain(self) -> None:
        while self._pending:
            self._pending.pop(0).result()

    def drain_quietly(self) -> None:
        """Wait for queued writes after a failure; their own errors matter less."""
        for pending in self._pending:
            try:
                pending.result()
            except Exception:
                log.debug("a queued write failed while aborting", exc_info=True)
        self._pending.clear()


async def ingest_day(
    client: CocClient,
    *,
    day: date,
    warehouse: WarehouseSettings,
    flush_rows: int = FLUSH_ROWS,
    progress_every: int = 50,
    report: Callable[[str], None] | None = None,
) -> DayResult:
    """Walk ``day`` and publish its three tables; on any error the old partition stays."""
    started = time.monotonic()
    before = client.metrics.as_dict()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet") as pool:
        writer = DayWriter(root=warehouse.warehouse, day=day)
        with writer:
            load = _DayLoad(writer, pool, flush_rows)
            try:
                walk = await walk_day(
                    client,
                    day=day,
                    tz=warehouse.tz,
                    sink=load,
                    progress_every=progress_every,
                    report=report,
                )
                load.finish()
            except BaseException:
                load.drain_quietly()
                raise
            tables = await asyncio.to_thread(writer.commit)
    after = client.metrics.as_dict()
    return DayResult(
        day=day,
        walk=walk,
        tables=tables,
        requests=_delta(before, after),
        seconds=time.monotonic() - started,
        run_id=writer.run_id,
        tickets=load.tickets,
    )


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in after.items():
        if isinstance(value, dict):
            prev = before.get(key, {})
            out[key] = {k: v - prev.get(k, 0) for k, v in value.items()}
        else:
            out[key] = value - before.get(key, 0)
    return out


async def ingest_days_async(
    settings: ClientSettings,
    warehouse: WarehouseSettings,
    days: Sequence[date],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    report: Callable[[str], None] | None = None,
    on_day: Callable[[DayResult], None] | None = None,
    flush_rows: int = FLUSH_ROWS,
) -> list[DayResult]:
    """Ingest several days with one client; stops at the first day that fails."""
    results = []
    async with CocClient(settings, transport=transport) as client:
        for day in days:
            result = await ingest_day(
                client, day=day, warehouse=warehouse, report=report, flush_rows=flush_rows
            )
            if on_day is not None:
                on_day(result)
            results.append(result)
    return results


def ingest_days(
    settings: ClientSettings,
    warehouse: WarehouseSettings,
    days: Sequence[date],
    **kwargs: Any,
) -> list[DayResult]:
    """Synchronous entry point: runs ``ingest_days_async`` in a fresh event loop."""
    return asyncio.run(ingest_days_async(settings, warehouse, days, **kwargs))
