"""Walks over the marker-paged endpoints, as async iterators, behind one paging loop.

``paged`` is that loop: it asks for the marker the pure ``MarkerPager`` names, feeds the
pager the page's ids and total, and hands the page on with the positions to keep. On top:

* ``BatchPages`` (``client.iter_batch``): every kept page of one batch as a ``RawPage``, the
  body as received with only the ids and the total decoded, for a consumer that decodes it
  elsewhere (the Arrow loader); ``BatchPages.decoded()`` is the same walk with each page
  decoded into the typed models;
* ``OrderPages`` (``client.iter_orders``): every ticket of a creation-time window.

The consumer pulls: the next page is asked for only when it wants one, so a slow consumer
slows the walk down by itself (back-pressure) and nothing piles up here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from pipelines.coc import errors
from pipelines.coc.models import (
    DECODE_ERRORS,
    BatchPage,
    BatchPageIds,
    Instance,
    Order,
    OrderPage,
    RawPage,
    describe_bad_body,
    envelope_type,
)
from pipelines.coc.paging import MarkerPager

T = TypeVar("T")

#: fetch one page at a marker: (the page's ids, its total, the page itself)
Fetch = Callable[[int], Awaitable[tuple[Sequence[int], int | None, T]]]

_BATCH_PAGE: msgspec.json.Decoder[Any] = msgspec.json.Decoder(envelope_type(BatchPage))


async def paged(pager: MarkerPager, fetch: Fetch[T]) -> AsyncIterator[tuple[int, T, list[int]]]:
    """The one paging loop: (marker asked for, page, positions of the records to keep)."""
    while (marker := pager.next_marker()) is not None:
        ids, total, page = await fetch(marker)
        yield marker, page, pager.accept(ids, total)


@dataclass(frozen=True)
class BatchWalk:
    """The outcome of paging through one batch."""

    execute_uuid: str
    batch_index: int
    total_instances: int | None
    kept: int
    duplicates: int
    pages: int


class BatchPages:
    """``async for page in client.iter_batch(uuid, index):`` every kept page of one batch.

    Iterate once; ``outcome`` then says what the walk found (kept, repeated ids, pages). Pages
    that contradict the batch's ``total_instances`` raise ``PagingError`` (see ``paging.py``);
    ``filtered`` (a status filter) keeps the total out of it: it counts the whole batch.
    """

    def __init__(
        self,
        execute_uuid: str,
        batch_index: int,
        fetch: Callable[[int], Awaitable[tuple[BatchPageIds, bytes]]],
        *,
        limit: int,
        filtered: bool = False,
    ) -> None:
        self.execute_uuid = execute_uuid
        self.batch_index = batch_index
        self.pager = MarkerPager(
            ticket=execute_uuid, batch=batch_index, limit=limit, check_total=not filtered
        )
        self._fetch = fetch

    def __aiter__(self) -> AsyncIterator[RawPage]:
        return self._walk()

    async def _fetch_ids(self, marker: int) -> tuple[list[int], int | None, tuple[int, bytes]]:
        page, body = await self._fetch(marker)
        instances = page.execute_instances or []
        return [i.id for i in instances], page.total_instances, (len(instances), body)

    async def _walk(self) -> AsyncIterator[RawPage]:
        async for marker, (records, body), keep in paged(self.pager, self._fetch_ids):
            if keep:
                whole = len(keep) == records
                yield RawPage(
                    body=body, marker=marker, keep=None if whole else keep, count=len(keep)
                )

    async def decoded(self) -> AsyncIterator[list[Instance]]:
        """The same walk, each page's kept instances decoded and validated."""
        async for page in self:
            yield decode_instances(page, ticket=self.execute_uuid, batch=self.batch_index)

    @property
    def outcome(self) -> BatchWalk:
        pager = self.pager
        return BatchWalk(
            execute_uuid=self.execute_uuid,
            batch_index=self.batch_index,
            total_instances=pager.total,
            kept=pager.kept,
            duplicates=pager.duplicates,
            pages=pager.pages,
        )


def decode_instances(page: RawPage, *, ticket: str, batch: int) -> list[Instance]:
    """The kept instances of a batch page, decoded into the typed models.

    Raises ``ResponseError`` naming the ticket, batch and marker when the body is not the
    documented JSON (the ids decoded for paging say nothing of the other fields).
    """
    try:
        instances = _BATCH_PAGE.decode(page.body).data.execute_instances or []
    except DECODE_ERRORS as exc:
        raise errors.ResponseError(
            f"get_batch: {describe_bad_body(page.body, exc)}",
            ticket=ticket,
            batch=batch,
            marker=page.marker,
        ) from None
    return instances if page.keep is None else [instances[i] for i in page.keep]


class OrderPages:
    """``async for orders in client.iter_orders(...):`` every ticket of a window, a page at a
    time, by ``order_id`` marker (the first page is asked for without one).

    Iterate once; ``total`` is then the total the list reported.
    """

    def __init__(
        self, fetch: Callable[[int | None], Awaitable[OrderPage]], *, path: str, limit: int
    ) -> None:
        # the listing's order is not documented: the pager takes it from the first ids
        self.pager = MarkerPager(ascending=None, what="ticket list", limit=limit)
        self._fetch = fetch
        self._path = path

    @property
    def total(self) -> int | None:
        return self.pager.total

    def __aiter__(self) -> AsyncIterator[list[Order]]:
        return self._walk()

    async def _fetch_ids(self, marker: int) -> tuple[list[int], int | None, list[Order]]:
        page = await self._fetch(marker if self.pager.pages else None)
        orders = page.data or []
        ids = []
        for o in orders:
            if o.order_id is None:
                raise errors.ResponseError(
                    "a ticket in the list has no order_id (the list's marker)",
                    ticket=o.execute_uuid,
                    marker=marker,
                    path=self._path,
                )
            ids.append(o.order_id)
        return ids, page.total, orders

    async def _walk(self) -> AsyncIterator[list[Order]]:
        async for _, orders, keep in paged(self.pager, self._fetch_ids):
            if keep:
                yield orders if len(keep) == len(orders) else [orders[i] for i in keep]
