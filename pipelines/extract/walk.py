"""Walking one day of COC: the day's tickets, each ticket's batches, each batch's pages.

A lister pages through the day's tickets and feeds a bounded queue; ticket workers take
tickets from it, read each ticket's detail and batch list together, then page every non-empty
batch, batches in parallel. Every request passes the client's shared gate, so the rate and
concurrency caps hold for the whole walk. Pages go to the sink as they arrive (nothing
accumulates here), and a ticket is reported to the sink once all its batches are read.

The server's creation-time window is not trusted: a ticket is taken only when its
``gmt_created`` lies in ``[day 00:00, next day 00:00)`` of the partition's time zone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from pipelines.coc import errors
from pipelines.coc.client import CocClient
from pipelines.coc.models import BatchSummary, Order, OrderDetail, RawPage
from pipelines.coc.pagination import BatchWalk

log = logging.getLogger(__name__)


def day_window(day: date, tz: ZoneInfo) -> tuple[int, int]:
    """``[start, end)`` of a calendar day in ``tz`` as epoch milliseconds (DST-aware)."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


@dataclass
class TicketRead:
    """Everything read for one ticket, once all its batches are done."""

    order: Order
    detail: OrderDetail
    batches: list[BatchSummary]
    walks: dict[int, BatchWalk]

    @property
    def execute_uuid(self) -> str:
        return self.order.execute_uuid or ""

    def ingested(self, batch_index: int) -> int:
        walk = self.walks.get(batch_index)
        return walk.kept if walk is not None else 0


class DaySink(Protocol):
    """Where a walk puts what it reads.

    ``instances`` receives each kept batch page as a ``RawPage``: the body as received, only
    its ids and total decoded here (``pagination.decode_instances`` decodes the rest).
    """

    def instances(self, execute_uuid: str, batch_index: int, page: RawPage) -> None: ...

    def ticket(self, read: TicketRead) -> None: ...


@dataclass
class WalkStats:
    day: str
    list_total: int | None = None
    listed: int = 0
    outside_window: int = 0
    tickets: int = 0
    batches: int = 0
    empty_batches: int = 0
    instances: int = 0
    duplicates: int = 0
    pages: int = 0
    seconds: float = 0.0


class _Progress:
    def __init__(
        self, stats: WalkStats, every: int, started: float, report: Callable[[str], None]
    ) -> None:
        self.stats = stats
        self.every = every
        self.started = started
        self.report = report

    def ticket_done(self) -> None:
        s = self.stats
        if self.every and s.tickets % self.every == 0:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            self.report(
                f"{s.day}: {s.tickets} tickets of {_listed(s)}, "
                f"{s.batches} batches, {s.instances} instances, "
                f"{s.instances / elapsed:.0f} instances/s"
            )


def _listed(s: WalkStats) -> str:
    """The ticket total as known: the list's once it is read, else what is listed so far."""
    return f"{s.listed} listed so far" if s.list_total is None else str(s.list_total)


_DONE = object()


async def walk_day(
    client: CocClient,
    *,
    day: date,
    tz: ZoneInfo,
    sink: DaySink,
    ticket_workers: int | None = None,
    progress_every: int = 50,
    report: Callable[[str], None] | None = None,
) -> WalkStats:
    """Read every instance of every batch of every ticket created on ``day`` into ``sink``."""
    start_ms, end_ms = day_window(day, tz)
    stats = WalkStats(day=day.isoformat())
    started = time.monotonic()
    progress = _Progress(stats, progress_every, started, report or log.info)
    workers = ticket_workers or max(2, 2 * client.settings.concurrency)
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=workers * 4)
    seen: set[str] = set()

    async def lister() -> None:
        listing = client.iter_orders(start_ms=start_ms, end_ms=end_ms)
        async for orders in listing:  # the next page is asked for once the queue takes these
            for order in orders:
                stats.listed += 1
                uuid = order.execute_uuid
                if not uuid:
                    raise errors.ResponseError(
                        "a ticket in the list has no execute_uuid", marker=order.order_id
                    )
                created = order.gmt_created
                if created is None or not start_ms <= created < end_ms:
                    stats.outside_window += 1
                    continue
                if uuid not in seen:
                    seen.add(uuid)
                    await queue.put(order)
        stats.list_total = listing.total
        for _ in range(workers):
            await queue.put(_DONE)

    async def worker() -> None:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            assert isinstance(item, Order)
            await _read_ticket(client, item, sink, stats)
            stats.tickets += 1
            progress.ticket_done()

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(lister())
            for _ in range(workers):
                group.create_task(worker())
    except BaseExceptionGroup as eg:
        raise _first_error(eg) from None
    stats.seconds = time.monotonic() - started
    return stats


async def _read_ticket(client: CocClient, order: Order, sink: DaySink, stats: WalkStats) -> None:
    uuid = order.execute_uuid or ""
    detail, batches = await asyncio.gather(client.get_order(uuid), client.list_batches(uuid))
    _check_batches(uuid, batches)
    walks: dict[int, BatchWalk] = {}

    async def read_batch(batch: BatchSummary) -> None:
        index = batch.batch_index
        pages = client.iter_batch(uuid, index)
        async for page in pages:
            stats.instances += page.count
            sink.instances(uuid, index, page)
        walk = walks[index] = pages.outcome
        stats.pages += walk.pages
        stats.duplicates += walk.duplicates

    to_read = [b for b in batches if b.total_instances != 0]
    stats.batches += len(batches)
    stats.empty_batches += len(batches) - len(to_read)
    if to_read:
        async with asyncio.TaskGroup() as group:
            for batch in to_read:
                group.create_task(read_batch(batch))
    sink.ticket(TicketRead(order=order, detail=detail, batches=batches, walks=walks))


def _check_batches(uuid: str, batches: list[BatchSummary]) -> None:
    seen: set[int] = set()
    for b in batches:
        if not 1 <= b.batch_index <= 20:
            raise errors.ResponseError(
                f"the batch list names batch_index {b.batch_index}, outside 1..20",
                ticket=uuid,
                batch=b.batch_index,
            )
        if b.batch_index in seen:
            raise errors.ResponseError(
                f"the batch list names batch_index {b.batch_index} twice",
                ticket=uuid,
                batch=b.batch_index,
            )
        seen.add(b.batch_index)


def _first_error(eg: BaseExceptionGroup) -> BaseException:
    """The first real error in a (nested) exception group, preferring our own errors."""
    leaves: list[BaseException] = []

    def collect(group: BaseExceptionGroup) -> None:
        for exc in group.exceptions:
            if isinstance(exc, BaseExceptionGroup):
                collect(exc)
            else:
                leaves.append(exc)

    collect(eg)
    for exc in leaves:
        if isinstance(exc, errors.CocError):
            return exc
    for exc in leaves:
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return leaves[0]
