"""The simulator's raw ASGI app: the five GET endpoints of the COC script-order API.

    GET /v1/job/script/orders                                     list (limit, marker, ...)
    GET /v1/job/script/orders/{execute_uuid}                      one ticket
    GET /v1/job/script/orders/{execute_uuid}/batches              its batches
    GET /v1/job/script/orders/{execute_uuid}/batches/{batch_index}  one batch, paged
    GET /v1/job/script/orders/{execute_uuid}/statistics           status counts

Every answer is ``{"data": ...}`` or a Huawei-style ``{"error_code", "error_msg"}``. The
uuid is one percent-decoded path segment (``%2F`` inside it belongs to it). The list is
ordered by ``order_id`` ascending, the page after ``marker`` starts after it, and its
``start_time``/``end_time`` window is inclusive on both ends. A batch page holds the
instances with ``id > marker``, at most ``limit``; ``total_instances`` is the batch's whole
count whatever the page or ``status`` filter. ``now`` comes from a ``Clock``: fixed, or the
real time.

Speed: a batch is rendered once into per-instance JSON bytes (cached in a byte-budgeted
LRU while its ticket can no longer change) and a page is a slice joined into a template.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from coc_simulator.data import Dataset
from coc_simulator.faults import ERRORS, FaultAnswer, Faults
from coc_simulator.model import MAX_MARKER, Ticket, to_ms
from coc_simulator.stats import RequestRecord, Stats

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

ORDER_STATUSES = frozenset({"PROCESSING", "ABNORMAL", "PAUSED", "CANCELED", "FINISHED"})
BATCH_STATUS_FILTERS = frozenset({"READY", "PROCESSING", "ABNORMAL", "CANCELED", "FINISHED"})
LIST_LIMIT_MAX = 100
LIST_LIMIT_DEFAULT = 10
PAGE_LIMIT_MAX = 50
MAX_UUID_LEN = 26
DEFAULT_CACHE_BYTES = 512 * 1024 * 1024
_PREFIX = [b"", b"v1", b"job", b"script", b"orders"]
_JSON = (b"content-type", b"application/json;charset=UTF-8")


class Clock:
    """The simulated time: fixed epoch ms, or the real time when unset."""

    def __init__(self, fixed: datetime | int | None = None) -> None:
        self.fixed: int | None = None if fixed is None else to_ms(fixed)

    def set(self, value: datetime | int | None) -> None:
        self.fixed = None if value is None else to_ms(value)

    def now_ms(self) -> int:
        fixed = self.fixed
        return int(time.time() * 1000) if fixed is None else fixed


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        self.status, self.message = status, message
        self.code = code or ERRORS[status][0]
        super().__init__(message)


def error_body(status: int, detail: str | None = None, code: str | None = None) -> bytes:
    default_code, message = ERRORS.get(status, (f"COC.000{status}00", "Error"))
    text = f"{message}: {detail}" if detail else message
    return orjson.dumps({"error_code": code or default_code, "error_msg": text})


@dataclass(slots=True)
class RenderedBatch:
    ids: list[int]
    items: list[bytes]
    statuses: list[str]
    size: int
    by_status: dict[str, tuple[list[int], list[bytes]]] | None = None


class ByteCache:
    """An LRU of rendered bodies bounded by their total size in bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._used = 0
        self._items: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: tuple, value: Any, size: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._used -= old[1]
            self._items[key] = (value, size)
            self._used += size
            while self._used > self.budget and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._used -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._used = 0


def _parse_query(raw: bytes) -> dict[str, str]:
    params: dict[str, str] = {}
    for piece in raw.split(b"&"):
        if not piece:
            continue
        key, _, value = piece.partition(b"=")
        if b"%" in piece or b"+" in piece:
            k = unquote_to_bytes(key.replace(b"+", b" ")).decode("utf-8", "replace")
            v = unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8", "replace")
        else:
            k, v = key.decode("utf-8", "replace"), value.decode("utf-8", "replace")
        params.setdefault(k, v)
    return params


def _int(
    params: Mapping[str, str], name: str, low: int, high: int, *, required: bool
) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise ApiError(400, f"{name} is mandatory", "COC.00040002")
        return None
    digits = raw[1:] if raw[:1] == "-" else raw
    if not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        raise ApiError(400, f"{name} must be an integer, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be within {low}..{high}, got {value}")
    return value


class SimulatorApp:
    """ASGI callable; ``credentials`` (ak -> sk) or ``token`` turn authentication on."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        faults: Faults | None = None,
        stats: Stats | None = None,
        clock: Clock | None = None,
        credentials: Mapping[str, str] | None = None,
        token: str | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.dataset = dataset
        self.faults = faults if faults is not None else Faults()
        self.stats = stats if stats is not None else Stats()
        self.clock = clock if clock is not None else Clock(dataset.config.now)
        self._credentials = dict(credentials or {})
        self._token = token
        self.cache = ByteCache(cache_bytes)
        self._verify: Callable[..., str | None] | None = None

    def __repr__(self) -> str:
        auth = "ak/sk" if self._credentials else "token" if self._token else "none"
        return f"SimulatorApp(auth={auth}, tickets={len(self.dataset.tickets)})"

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        record: dict[str, Any] = {"endpoint": "unknown", "at": time.monotonic()}
        try:
            status, body, headers, fault = await self._answer(scope, receive, record)
        except ApiError as exc:
            status, body, headers, fault = (
                exc.status,
                error_body(exc.status, exc.message, exc.code),
                (),
                None,
            )
        if fault is not None and fault.drop is not None:
            self.stats.record(RequestRecord(status=0, fault="dropped", **record))
            await self._drop(send, fault.drop)
            return
        self.stats.record(
            RequestRecord(status=status, fault=fault.kind if fault else None, **record)
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON, (b"content-length", b"%d" % len(body)), *headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _drop(self, send: Send, mode: str) -> None:
        body = error_body(500) * 4
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_JSON, (b"content-length", b"%d" % len(body))],
            }
        )
        if mode == "mid_body":
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
        # Returning now, with the body incomplete, makes uvicorn close the connection.

    async def _answer(
        self, scope: Scope, receive: Receive, record: dict[str, Any]
    ) -> tuple[int, bytes, tuple, FaultAnswer | None]:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        segments = raw_path.split(b"/")
        n = len(segments)
        if segments[:5] != _PREFIX or n > 8:
            raise ApiError(404, f"no such API: {scope['path']}", "APIGW.0101")
        endpoint = "list"
        if n == 6:
            endpoint = "detail"
        elif n == 7 and segments[6] in (b"batches", b"statistics"):
            endpoint = "batches" if segments[6] == b"batches" else "statistics"
        elif n == 8 and segments[6] == b"batches":
            endpoint = "batch"
        elif n != 5:
            raise ApiError(404, f"no such API: {scope['path']}", "APIGW.0101")
        record["endpoint"] = endpoint
        if scope["method"] != "GET":
            raise ApiError(405, f"method {scope['method']} not allowed")
        uuid = None
        if n > 5:
            try:
                uuid = unquote_to_bytes(segments[5]).decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, "execute_uuid is not valid UTF-8") from None
            record["execute_uuid"] = uuid
        if self._credentials or self._token:
            await self._authenticate(scope, receive)
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000.0)
        fault = faults.decide(execute_uuid=uuid) if faults.active else None
        if fault is not None:
            if fault.drop is not None:
                return 0, b"", (), fault
            return fault.status, error_body(fault.status), fault.headers, fault
        params = _parse_query(scope["query_string"]) if scope["query_string"] else {}
        now = self.clock.now_ms()
        if endpoint == "list":
            body = self._list(params, now)
        else:
            assert uuid is not None
            if not 1 <= len(uuid) <= MAX_UUID_LEN:
                raise ApiError(400, f"execute_uuid must be 1..{MAX_UUID_LEN} characters long")
            if endpoint == "batch":
                body = self._batch_page(uuid, segments[7], params, now, record)
            else:
                body = self._ticket_body(endpoint, uuid, now)
        spoiled = faults.invalid_body() if faults.invalid_body_rate else None
        if spoiled is not None:
            return 200, spoiled, (), FaultAnswer(kind="invalid_body", status=200)
        return 200, body, (), None

    async def _authenticate(self, scope: Scope, receive: Receive) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        if self._credentials:
            body = b""
            if "content-length" in headers or "transfer-encoding" in headers:
                more = True
                while more:
                    message = await receive()
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
            if self._verify is None:
                from pipelines.coc.auth import verify_signature

                self._verify = verify_signature
            reason = self._verify(
                method=scope["method"],
                raw_path=scope.get("raw_path") or scope["path"],
                query_string=scope["query_string"],
                headers=headers,
                body=body,
                credentials=self._credentials,
            )
            if reason is not None:
                raise ApiError(401, reason)
        else:
            given = headers.get("x-auth-token", "")
            if not given:
                raise ApiError(401, "missing X-Auth-Token")
            if not hmac.compare_digest(given.encode("latin-1"), (self._token or "").encode()):
                raise ApiError(401, "the token is invalid or expired")

    # -- endpoints -------------------------------------------------------------------------

    def _list(self, params: Mapping[str, str], now: int) -> bytes:
        limit = _int(params, "limit", 1, LIST_LIMIT_MAX, required=False) or LIST_LIMIT_DEFAULT
        marker = _int(params, "marker", 0, 2**63 - 1, required=False)
        start = _int(params, "start_time", 0, 2**63 - 1, required=False)
        end = _int(params, "end_time", 0, 2**63 - 1, required=False)
        if start is not None and end is not None and start > end:
            raise ApiError(400, "start_time must not be after end_time")
        status = params.get("status") or None
        if status is not None and status not in ORDER_STATUSES:
            raise ApiError(400, f"status must be one of {sorted(ORDER_STATUSES)}")
        creator = params.get("creator") or None
        if self.faults.page_clamp is not None:
            limit = max(1, min(limit, self.faults.page_clamp))
        total, page = self.dataset.query_orders(
            now=now,
            limit=limit,
            start_ms=start,
            end_ms=end,
            marker=marker,
            creator=creator,
            status=status,
        )
        records = b",".join(self._order_record(t, now) for t in page)
        return b'{"data":{"total":%d,"data":[%s]}}' % (total, records)

    def _order_record(self, ticket: Ticket, now: int) -> bytes:
        settled = now >= self.dataset.run(ticket).settled_at
        key = ("record", ticket.execute_uuid, -1 if settled else now)
        body = self.cache.get(key)
        if body is None:
            body = orjson.dumps(self.dataset.order_record(ticket, now=now))
            self.cache.put(key, body, len(body) + 200)
        return body

    def _ticket(self, uuid: str, now: int) -> Ticket:
        ticket = self.dataset.ticket(uuid, now=now)
        if ticket is None:
            raise ApiError(404, f"script order {uuid!r} not found", "COC.00040004")
        return ticket

    def _ticket_body(self, endpoint: str, uuid: str, now: int) -> bytes:
        ticket = self._ticket(uuid, now)
        settled = now >= self.dataset.run(ticket).settled_at
        key = (endpoint, uuid, -1 if settled else now)
        body = self.cache.get(key)
        if body is None:
            ds = self.dataset
            view = {"detail": ds.detail, "batches": ds.batch_list, "statistics": ds.statistics}
            body = orjson.dumps({"data": view[endpoint](ticket, now=now)})
            self.cache.put(key, body, len(body) + 200)
        return body

    def _batch_page(
        self,
        uuid: str,
        raw_index: bytes,
        params: Mapping[str, str],
        now: int,
        record: dict[str, Any],
    ) -> bytes:
        decoded = unquote_to_bytes(raw_index).decode("latin-1")
        index = _int({"batch_index": decoded}, "batch_index", 1, 20, required=True)
        limit = _int(params, "limit", 1, PAGE_LIMIT_MAX, required=True)
        marker = _int(params, "marker", 0, MAX_MARKER, required=True)
        assert index is not None and limit is not None and marker is not None
        record.update(batch_index=index, marker=marker, limit=limit)
        status = params.get("status") or None
        if status is not None and status not in BATCH_STATUS_FILTERS:
            raise ApiError(400, f"status must be one of {sorted(BATCH_STATUS_FILTERS)}")
        ticket = self._ticket(uuid, now)
        pos = ticket.batch_position(index)
        if pos is None:
            raise ApiError(404, f"batch {index} of script order {uuid!r} not found", "COC.00040005")
        faults = self.faults
        if faults.page_clamp is not None:
            limit = max(1, min(limit, faults.page_clamp))
        if marker and (uuid, index) in faults.stuck:
            marker = 0
        rendered = self.render_batch(ticket, pos, now)
        ids, items = rendered.ids, rendered.items
        if status is not None:
            ids, items = self._filtered(rendered, status)
        first = bisect_right(ids, marker) if marker else 0
        return b'{"data":{"batch_index":%d,"total_instances":%d,"execute_instances":[%s]}}' % (
            index,
            faults.batch_totals.get((uuid, index), rendered.size),
            b",".join(items[first : first + limit]),
        )

    @staticmethod
    def _filtered(rendered: RenderedBatch, status: str) -> tuple[list[int], list[bytes]]:
        if rendered.by_status is None:
            groups: dict[str, tuple[list[int], list[bytes]]] = {}
            for i, s in enumerate(rendered.statuses):
                ids, items = groups.setdefault(s, ([], []))
                ids.append(rendered.ids[i])
                items.append(rendered.items[i])
            rendered.by_status = groups
        return rendered.by_status.get(status, ([], []))

    def render_batch(self, ticket: Ticket, pos: int, now: int) -> RenderedBatch:
        """The batch's instances as JSON bytes at ``now``; cached once the ticket is settled."""
        settled = now >= self.dataset.run(ticket).settled_at
        key = ("batch", ticket.execute_uuid, pos, -1 if settled else now)
        rendered = self.cache.get(key)
        if rendered is None:
            items = self.dataset.instance_items(ticket, pos, now)
            dumps = orjson.dumps
            encoded = [dumps(item) for item in items]
            rendered = RenderedBatch(
                ids=[item["id"] for item in items],
                items=encoded,
                statuses=[item["status"] for item in items],
                size=ticket.batches[pos].size,
            )
            self.cache.put(key, rendered, sum(map(len, encoded)) + 120 * len(items) + 200)
        return rendered

    def warm(self, start_ms: int, end_ms: int, *, now: int | None = None) -> int:
        """Render every page body source of the tickets created in [start_ms, end_ms) ahead
        of a benchmark; returns the number of instances rendered."""
        now = self.clock.now_ms() if now is None else now
        count = 0
        for ticket in self.dataset.tickets_in_window(start_ms, end_ms, now=now):
            self._order_record(ticket, now)
            for endpoint in ("detail", "batches", "statistics"):
                self._ticket_body(endpoint, ticket.execute_uuid, now)
            for pos in range(len(ticket.batches)):
                count += len(self.render_batch(ticket, pos, now).ids)
        return count
