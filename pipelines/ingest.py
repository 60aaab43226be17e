"""One day of COC into the warehouse: walk the day, flatten pages, stream Parquet, swap it in.

``ingest_days`` is what the Dagster assets and the CLI call. It opens one client (one
connection pool, one rate gate) for all the days of a run and ingests them one after
another; each day is published whole or not at all.

Two ways to turn pages into Parquet, same result:

* ``offload=True`` (the default): the fetching process decodes only ids and totals and ships
  page bodies to a ``FlattenWorker`` process that decodes, flattens and writes them, so
  fetching and flattening use both cores (``pipelines/offload.py``);
* ``offload=False``: everything in this process (``pipelines/load.py``), decoded pages
  flattened in the event loop and written by one thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx

from pipelines.coc.client import CocClient
from pipelines.coc.models import BatchSummary, Instance, Order, OrderDetail, RawPage
from pipelines.flatten import batches_batch, orders_batch
from pipelines.load import FLUSH_ROWS, InstanceLoader
from pipelines.offload import FlattenWorker
from pipelines.parquet import DayWriter, TableStats
from pipelines.settings import ClientSettings, WarehouseSettings
from pipelines.walk import TicketRead, WalkStats, walk_day

log = logging.getLogger(__name__)

#: execute_uuid -> (ticket status, {batch_index: (total_instances, instances ingested)})
TicketLedger = dict[str, tuple[str | None, dict[int, tuple[int | None, int]]]]


@dataclass
class DayResult:
    """What one day's ingestion did."""

    day: date
    walk: WalkStats
    tables: dict[str, TableStats]
    requests: dict[str, Any]
    seconds: float
    tickets: TicketLedger = field(default_factory=dict)

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


class _InlineSink(_Tickets):
    raw_pages = False

    def __init__(self, loader: InstanceLoader) -> None:
        super().__init__()
        self.loader = loader

    def instances(self, execute_uuid: str, batch_index: int, page: list[Instance]) -> None:
        self.loader.add(execute_uuid, batch_index, page)


class _OffloadSink(_Tickets):
    raw_pages = True

    def __init__(self, worker: FlattenWorker) -> None:
        super().__init__()
        self.worker = worker

    def instances(self, execute_uuid: str, batch_index: int, page: RawPage) -> None:
        self.worker.page(execute_uuid, batch_index, page)


async def ingest_day(
    client: CocClient,
    *,
    day: date,
    warehouse: WarehouseSettings,
    worker: FlattenWorker | None = None,
    flush_rows: int = FLUSH_ROWS,
    progress_every: int = 50,
    report: Callable[[str], None] | None = None,
) -> DayResult:
    """Walk ``day`` and publish its three tables; on any error the old partition stays."""
    started = time.monotonic()
    before = client.metrics.as_dict()
    walk_kw: dict[str, Any] = {"progress_every": progress_every, "report": report}
    if worker is not None:
        sink: _Tickets = _OffloadSink(worker)
        worker.begin(day, warehouse.warehouse)
        try:
            walk = await walk_day(client, day=day, tz=warehouse.tz, sink=sink, **walk_kw)
            for name, batch in sink.tables():
                worker.table(name, batch)
            tables = await asyncio.to_thread(worker.commit)
        except BaseException:
            await asyncio.to_thread(worker.abort)
            raise
    else:
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet") as pool,
            DayWriter(root=warehouse.warehouse, day=day, row_group_rows=flush_rows) as writer,
        ):
            loader = InstanceLoader(writer, pool, flush_rows)
            sink = _InlineSink(loader)
            try:
                walk = await walk_day(client, day=day, tz=warehouse.tz, sink=sink, **walk_kw)
                for name, batch in sink.tables():
                    loader.add_table(name, batch)
                loader.finish()
            except BaseException:
                loader.drain_quietly()
                raise
            tables = await asyncio.to_thread(writer.commit)
    return DayResult(
        day=day,
        walk=walk,
        tables=tables,
        requests=_delta(before, client.metrics.as_dict()),
        seconds=time.monotonic() - started,
        tickets=sink.ledger,
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
    offload: bool = True,
) -> list[DayResult]:
    """Ingest several days with one client; stops at the first day that fails."""
    results = []
    worker = await asyncio.to_thread(_start_worker, flush_rows) if offload else None
    try:
        async with CocClient(settings, transport=transport) as client:
            for day in days:
                result = await ingest_day(
                    client,
                    day=day,
                    warehouse=warehouse,
                    worker=worker,
                    report=report,
                    flush_rows=flush_rows,
                )
                if on_day is not None:
                    on_day(result)
                results.append(result)
    finally:
        if worker is not None:
            await asyncio.to_thread(worker.close)
    return results


def _start_worker(flush_rows: int) -> FlattenWorker | None:
    """A flatten worker process, or None (and this process does the work) if it cannot start."""
    try:
        worker = FlattenWorker(flush_rows=flush_rows)
    except OSError as exc:
        log.warning("no flatten worker process (%s): flattening in this process", exc)
        return None
    if worker.wait_ready():
        return worker
    worker.close()
    log.warning("the flatten worker process did not start: flattening in this process")
    return None


def ingest_days(
    settings: ClientSettings,
    warehouse: WarehouseSettings,
    days: Sequence[date],
    **kwargs: Any,
) -> list[DayResult]:
    """Synchronous entry point: runs ``ingest_days_async`` in a fresh event loop."""
    return asyncio.run(ingest_days_async(settings, warehouse, days, **kwargs))
