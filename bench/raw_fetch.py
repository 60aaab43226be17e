"""The baseline of the end-to-end measurement: a bytes-only fetch of every page of the day.

Every request the product makes for the day is known in advance from the simulator's truth:
the list pages (by ``order_id`` marker), each ticket's detail and batch list, and every
page of every non-empty batch (by instance ``id`` marker: the last id of the page before).
``fetch_pages`` GETs them with the product's own HTTP stack (an ``httpx.AsyncClient`` on
``AiohttpTransport``, the same concurrency and headers) from that many workers, reading
the bodies and nothing else: no decoding, paging logic, rate gate, flattening or writing.
What the product does beyond this is what it costs on top of the wire.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from bench.day import BenchDay
from pipelines.coc.client import ORDERS_PATH, path_segment
from pipelines.coc.settings import DEFAULT_LIST_LIMIT, DEFAULT_PAGE_LIMIT
from pipelines.coc.transport import AiohttpTransport
from pipelines.ingest import gc_frozen

Params = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One GET of the day; ``batch`` is (execute_uuid, batch_index) for an instance page."""

    path: str
    params: Params
    batch: tuple[str, int] | None = None


def day_requests(
    day: BenchDay,
    *,
    list_limit: int = DEFAULT_LIST_LIMIT,
    page_limit: int = DEFAULT_PAGE_LIMIT,
    end_time_ms: int | None = None,
) -> list[PageRequest]:
    """Every request a minimal walk of ``day`` makes, with the product's paths and params."""
    start, end = day.window
    query_end = end if end_time_ms is None else end_time_ms
    dataset = day.dataset
    _, listed = dataset.query_orders(
        now=dataset.anchor_ms, limit=10**9, start_ms=start, end_ms=query_end
    )
    requests: list[PageRequest] = []
    marker: int | None = None
    for first in range(0, max(1, len(listed)), list_limit):
        params: Params = [("limit", str(list_limit))]
        if marker is not None:
            params.append(("marker", str(marker)))
        params += [("start_time", str(start)), ("end_time", str(query_end))]
        requests.append(PageRequest(ORDERS_PATH, params))
        page = listed[first : first + list_limit]
        if page:
            marker = page[-1].order_id
    for ticket in day.tickets:
        base = f"{ORDERS_PATH}/{path_segment(ticket.execute_uuid)}"
        requests.append(PageRequest(base, []))
        requests.append(PageRequest(f"{base}/batches", []))
        run = dataset.run(ticket)
        for batch, drawn in zip(ticket.batches, run.batches, strict=True):
            ids = drawn.ids
            for offset in range(0, batch.size, page_limit):
                marker = ids[offset - 1] if offset else 0
                requests.append(
                    PageRequest(
                        f"{base}/batches/{batch.index}",
                        [("limit", str(page_limit)), ("marker", str(marker))],
                        (ticket.execute_uuid, batch.index),
                    )
                )
    return requests


@dataclass
class FetchResult:
    requests: int
    bytes: int
    #: (execute_uuid, batch_index, body) of every instance page, when asked to keep them
    batch_pages: list[tuple[str, int, bytes]]


async def _fetch(
    endpoint: str, requests: list[PageRequest], concurrency: int, keep: bool
) -> FetchResult:
    transport = AiohttpTransport(max_connections=concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    bodies: list[bytes | None] = [None] * len(requests)
    total = 0
    pending = iter(enumerate(requests))
    async with httpx.AsyncClient(
        base_url=endpoint,
        transport=transport,
        limits=limits,
        headers={"accept": "application/json", "user-agent": "coc-warehouse/0.1"},
    ) as client:

        async def worker() -> None:
            nonlocal total
            for n, request in pending:
                response = await client.get(request.path, params=request.params)
                body = response.content
                if response.status_code != 200:
                    raise RuntimeError(f"raw fetch: HTTP {response.status_code} for {request}")
                total += len(body)
                if keep and request.batch is not None:
                    bodies[n] = body

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    pages = []
    if keep:
        for request, body in zip(requests, bodies, strict=True):
            if request.batch is not None and body is not None:
                pages.append((request.batch[0], request.batch[1], body))
    return FetchResult(requests=len(requests), bytes=total, batch_pages=pages)


def fetch_pages(
    endpoint: str, requests: list[PageRequest], *, concurrency: int, keep: bool = False
) -> FetchResult:
    """GET every request from ``concurrency`` workers; bytes only. The objects that exist
    before are kept out of the garbage collector's scans, as the product's run does
    (``ingest.gc_frozen``), so that neither pays for the bench process's heap."""
    with gc_frozen():
        return asyncio.run(_fetch(endpoint, requests, concurrency, keep))
