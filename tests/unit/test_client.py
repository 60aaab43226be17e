"""CocClient against ``httpx.MockTransport`` handlers: requests, paging, retries, errors.

No sockets: the endpoint is loopback but every request is answered in-process. The client
gets a fake clock and sleep (``conftest.FakeTime``), so nothing here waits in real time and
every wait is recorded. The harness's settings are unpaced (pacing is ``test_retry_gate``'s),
so each recorded sleep is a retry wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import AsyncIterable, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from pipelines.coc import errors
from pipelines.coc.client import ORDERS_PATH, CocClient, path_segment
from pipelines.coc.models import RawPage
from pipelines.coc.pagination import BatchWalk, OrderPages
from pipelines.coc.retry import RESPONSE_ERROR_ATTEMPTS, RetryPolicy
from pipelines.coc.settings import ClientSettings
from tests.support.fake_time import FakeTime

ENDPOINT = "http://127.0.0.1:9"
AK = "HPUAEXAMPLEAK0000001"
SK = "SK-do-not-leak-7f3a9c21e4b8d6"
TOKEN = "TOKEN-do-not-leak-MIIZ0a1b2c3d4e5f"
UUID = "tick-0001"
PREFIX = ORDERS_PATH.encode() + b"/"

Handler = Callable[[httpx.Request], httpx.Response]


class Harness:
    """A MockTransport around ``handler`` that records every request it sees, and a client
    on a fake clock that records every wait."""

    def __init__(
        self,
        handler: Handler,
        *,
        settings: ClientSettings | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings or ClientSettings(endpoint=ENDPOINT, max_rps=None)
        self.retry = retry
        self.requests: list[httpx.Request] = []
        self.time = FakeTime()
        self.delays = self.time.sleeps
        self.client: CocClient | None = None

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        self._transport = httpx.MockTransport(record)

    def run(self, call: Callable[[CocClient], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            client = CocClient(
                self.settings,
                transport=self._transport,
                retry=self.retry,
                clock=self.time.clock,
                sleep=self.time.sleep,
            )
            self.client = client
            async with client:
                return await call(client)

        return asyncio.run(main())

    @property
    def metrics(self) -> Any:
        assert self.client is not None
        return self.client.metrics


def instance(rid: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "target_instance": {
            "resource_id": f"res-{rid}",
            "region_id": "cn-north-4",
            "custom_attributes": [{"key": "k", "value": "v"}],
            "agent_status": None,
            "properties": {"host_name": f"host-{rid}", "zone_id": "cn-north-4a"},
        },
        "gmt_created": 1_700_000_000_000,
        "gmt_finished": 1_700_000_311_031,
        "execute_costs": 311031,
        "status": "FINISHED",
        "message": "ok",
        **extra,
    }


def batch_body(ids: list[int], total: int | None, batch_index: int = 1) -> dict[str, Any]:
    return {
        "data": {
            "batch_index": batch_index,
            "total_instances": total,
            "execute_instances": [instance(i) for i in ids],
        }
    }


def batch_server(ids: list[int], *, clamp: int = 50, inclusive: bool = False) -> Handler:
    """The batch endpoint over ``ids``: ids after the marker, up to min(limit, clamp)."""

    def handle(request: httpx.Request) -> httpx.Response:
        marker = int(request.url.params["marker"])
        limit = min(int(request.url.params["limit"]), clamp)
        rows = [i for i in ids if (i >= marker if inclusive else i > marker)][:limit]
        return httpx.Response(200, json=batch_body(rows, len(ids)))

    return handle


def gapped_ids(n: int, seed: int = 7) -> list[int]:
    ids, at = [], 1000
    for k in range(n):
        at += 1 + (k * seed) % 13
        ids.append(at)
    return ids


def walk(uuid: str = UUID, batch_index: int = 1, **kwargs: Any) -> Callable[..., Awaitable]:
    """A call collecting every instance of a batch, decoded: returns (BatchWalk, ids)."""

    async def call(client: CocClient) -> tuple[BatchWalk, list[int]]:
        got: list[int] = []
        pages = client.iter_batch(uuid, batch_index, **kwargs)
        async for instances in pages.decoded():
            got.extend(i.id for i in instances)
        return pages.outcome, got

    return call


async def drain(pages: AsyncIterable[Any]) -> None:
    async for _ in pages:
        pass


def drain_batch(uuid: str = UUID, batch_index: int = 1) -> Callable[..., Awaitable]:
    """A call walking a batch's raw pages, as the ingestion does."""
    return lambda client: drain(client.iter_batch(uuid, batch_index))


def one_page(uuid: str = UUID, batch_index: int = 1) -> Callable[..., Awaitable]:
    return lambda client: client.get_batch_page(uuid, batch_index)


def ok_page() -> httpx.Response:
    return httpx.Response(200, json=batch_body([1, 2], 2))


def sequence(*answers: httpx.Response | Exception) -> Handler:
    """Answer with each item in turn (raising exceptions), then a clean page forever."""
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        if not queue:
            return ok_page()
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle


def huawei_error(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        json={"error_code": "COC.0001", "error_msg": f"the request failed with {status}"},
        headers=headers,
    )


# -- a clean walk -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 49, 50, 51, 100, 137, 500])
def test_clean_iter_batch_makes_the_minimal_requests(n: int) -> None:
    ids = gapped_ids(n)
    h = Harness(batch_server(ids))

    result, got = h.run(walk())

    assert got == ids
    expected = n // 50 + 1  # up to the first page that is not full
    assert len(h.requests) == expected
    assert h.metrics.requests == expected and h.metrics.retries == 0
    assert h.metrics.by_endpoint == {"get_batch": expected}
    markers = [int(r.url.params["marker"]) for r in h.requests]
    assert markers == [0] + [ids[50 * k - 1] for k in range(1, expected)]
    assert all(r.url.params["limit"] == "50" for r in h.requests)
    assert all(r.url.raw_path.startswith(PREFIX + b"tick-0001/batches/1?") for r in h.requests)
    assert (result.kept, result.total_instances, result.duplicates) == (n, n, 0)
    assert result.pages == expected


def test_iter_batch_through_a_clamping_server_keeps_going_on_short_pages() -> None:
    ids = gapped_ids(95)
    h = Harness(batch_server(ids, clamp=20))
    result, got = h.run(walk())
    assert got == ids and len(h.requests) == 5 and result.kept == 95


def test_iter_batch_drops_repeated_ids_of_an_inclusive_server() -> None:
    ids = gapped_ids(120)
    h = Harness(batch_server(ids, inclusive=True))
    result, got = h.run(walk())
    assert got == ids
    assert result.duplicates == len(h.requests) - 1 == 2


def test_iter_batch_passes_the_status_filter() -> None:
    h = Harness(batch_server([3, 4]))
    h.run(walk(status="ABNORMAL"))
    assert h.requests[0].url.params["status"] == "ABNORMAL"


def test_iter_batch_refuses_pages_that_stop_short_of_the_total() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        first = request.url.params["marker"] == "0"
        return httpx.Response(200, json=batch_body([1, 2, 3] if first else [], 10))

    h = Harness(handle)
    with pytest.raises(errors.PagingError, match="3 records by the last page, total 10") as info:
        h.run(walk("tick-short", 2))
    assert "ticket=tick-short" in str(info.value) and "batch=2" in str(info.value)
    assert "marker=3" in str(info.value) and len(h.requests) == 2


def test_iter_batch_stuck_marker_names_ticket_batch_and_marker() -> None:
    h = Harness(lambda request: httpx.Response(200, json=batch_body([5, 6, 7], 100)))
    with pytest.raises(errors.PagingError) as info:
        h.run(walk("tick-stuck", 4))
    text = str(info.value)
    assert "ticket=tick-stuck" in text and "batch=4" in text and "marker=7" in text
    assert len(h.requests) == 2


def test_raw_and_decoded_pages_come_from_the_same_walk() -> None:
    ids = gapped_ids(120)

    async def both(client: CocClient) -> tuple[list[RawPage], list[list[int]], BatchWalk]:
        raw = [page async for page in client.iter_batch(UUID, 1)]
        pages = client.iter_batch(UUID, 1)
        decoded = [[i.id for i in instances] async for instances in pages.decoded()]
        return raw, decoded, pages.outcome

    h = Harness(batch_server(ids, inclusive=True))
    raw, decoded, outcome = h.run(both)
    # the same requests each time; each later page repeats the last id of the one before,
    # which the raw page leaves out through ``keep`` and the decoded page drops
    assert len(h.requests) == 2 * outcome.pages == 6
    assert [p.marker for p in raw] == [0, ids[49], ids[98]]
    assert [p.keep for p in raw] == [None, list(range(1, 50)), list(range(1, 22))]
    assert [p.count for p in raw] == [len(d) for d in decoded] == [50, 49, 21]
    assert [i for d in decoded for i in d] == ids and outcome.duplicates == 2


def test_the_walk_asks_for_the_next_page_only_when_the_consumer_pulls() -> None:
    ids = gapped_ids(120)
    sent_before_each_page: list[int] = []

    async def slow_consumer(client: CocClient) -> None:
        async for _ in client.iter_batch(UUID, 1):
            sent_before_each_page.append(len(h.requests))
            await asyncio.sleep(0)  # other tasks run: the walk must not fetch ahead

    h = Harness(batch_server(ids))
    h.run(slow_consumer)
    assert sent_before_each_page == [1, 2, 3]


def test_a_decoded_page_off_the_schema_names_ticket_batch_and_marker() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        body = batch_body([1, 2], 2)
        body["data"]["execute_instances"][1]["status"] = 7  # ids fine, a status is a number
        return httpx.Response(200, json=body)

    h = Harness(handle)
    with pytest.raises(errors.ResponseError) as info:
        h.run(walk("tick-odd", 3))
    text = str(info.value)
    assert "does not match the documented schema" in text
    assert "ticket=tick-odd" in text and "batch=3" in text and "marker=0" in text


def test_iter_orders_pages_by_order_id_without_a_first_marker() -> None:
    order_ids = list(range(300, 180, -1))  # 120 tickets, newest first

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.raw_path.split(b"?")[0] == ORDERS_PATH.encode()
        marker = request.url.params.get("marker")
        rest = [i for i in order_ids if marker is None or i < int(marker)]
        rows = [
            {"order_id": i, "execute_uuid": f"u{i}", "status": "FINISHED"}
            for i in rest[: int(request.url.params["limit"])]
        ]
        return httpx.Response(200, json={"data": {"total": len(order_ids), "data": rows}})

    pages: list[list[int]] = []

    async def call(client: CocClient) -> OrderPages:
        listing = client.iter_orders(start_ms=1000, end_ms=2000)
        async for orders in listing:
            pages.append([o.order_id for o in orders])
        return listing

    h = Harness(handle)
    listing = h.run(call)

    assert [i for page in pages for i in page] == order_ids
    assert len(h.requests) == 3 and listing.pager.ascending is False
    assert listing.total == len(order_ids)
    first = h.requests[0].url.params
    assert "marker" not in first
    assert (first["start_time"], first["end_time"], first["limit"]) == ("1000", "2000", "50")
    assert [r.url.params["marker"] for r in h.requests[1:]] == ["251", "201"]


# -- path encoding ------------------------------------------------------------------------------

HOSTILE_UUIDS = [
    "a/b",
    "a?b=c",
    "a#frag",
    "a%2Fb",
    "%",
    "..",
    ".",
    "a b",
    "../../x",
    "x/../../../y",
    "?#/%.. é",
]


@pytest.mark.parametrize("uuid", HOSTILE_UUIDS)
@pytest.mark.parametrize(
    ("method", "tail"),
    [
        (lambda c, u: c.get_order(u), []),
        (lambda c, u: c.list_batches(u), [b"batches"]),
        (lambda c, u: c.get_batch_page(u, 3), [b"batches", b"3"]),
        (lambda c, u: c.get_statistics(u), [b"statistics"]),
    ],
    ids=["detail", "batches", "batch", "statistics"],
)
def test_every_uuid_is_exactly_one_path_segment(uuid: str, method: Any, tail: list) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        is_list = request.url.raw_path.endswith(b"/batches")
        return httpx.Response(200, json={"data": [] if is_list else {}})

    h = Harness(handle)
    h.run(lambda client: method(client, uuid))

    assert len(h.requests) == 1
    request = h.requests[0]
    raw_path, _, query = request.url.raw_path.partition(b"?")
    assert raw_path.startswith(PREFIX)
    segments = raw_path[len(PREFIX) :].split(b"/")
    assert segments[1:] == tail
    assert unquote(segments[0].decode("ascii")) == uuid
    assert segments[0] == path_segment(uuid).encode("ascii")
    assert not any(s in (b".", b"..") for s in raw_path.split(b"/"))
    assert request.url.fragment == ""
    expected_query = b"limit=50&marker=0" if tail == [b"batches", b"3"] else b""
    assert query == expected_query


# -- validation before any request ----------------------------------------------------------------

BAD_CALLS = {
    "batch_index 0": lambda c: c.get_batch_page(UUID, 0),
    "batch_index 21": lambda c: c.get_batch_page(UUID, 21),
    "batch_index bool": lambda c: c.get_batch_page(UUID, True),
    "limit 0": lambda c: c.get_batch_page(UUID, 1, limit=0),
    "limit 51": lambda c: c.get_batch_page(UUID, 1, limit=51),
    "marker -1": lambda c: c.get_batch_page(UUID, 1, marker=-1),
    "marker 2**31": lambda c: c.get_batch_page(UUID, 1, marker=2_147_483_648),
    "uuid empty": lambda c: c.get_batch_page("", 1),
    "uuid 27 chars": lambda c: c.get_batch_page("u" * 27, 1),
    "uuid not str": lambda c: c.get_batch_page(None, 1),
    "status unknown": lambda c: c.get_batch_page(UUID, 1, status="DONE"),
    "status ROLLBACKED": lambda c: c.get_batch_page(UUID, 1, status="ROLLBACKED"),
    "detail uuid empty": lambda c: c.get_order(""),
    "batches uuid 27": lambda c: c.list_batches("u" * 27),
    "statistics uuid empty": lambda c: c.get_statistics(""),
    "list limit 0": lambda c: c.list_orders_page(limit=0),
    "list marker -1": lambda c: c.list_orders_page(marker=-1),
    "walk batch 21": lambda c: drain(c.iter_batch(UUID, 21)),
    "walk status": lambda c: drain(c.iter_batch(UUID, 1, status="x")),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_invalid_parameters_raise_before_any_request(call: Any) -> None:
    h = Harness(lambda request: pytest.fail("a request was sent"))
    with pytest.raises(errors.RequestValidationError):
        h.run(call)
    assert h.requests == [] and h.metrics.requests == 0


def test_boundary_parameters_are_accepted() -> None:
    h = Harness(lambda request: httpx.Response(200, json=batch_body([], 0)))
    h.run(lambda c: c.get_batch_page("u" * 26, 20, marker=2_147_483_647, limit=1))
    h.run(lambda c: c.get_batch_page("u", 1, marker=0, limit=50, status="FINISHED"))
    assert len(h.requests) == 2
    assert h.requests[0].url.params["marker"] == "2147483647"


def test_client_outside_async_with_raises() -> None:
    client = CocClient(ClientSettings(endpoint=ENDPOINT))
    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(client.get_batch_page(UUID, 1))


# -- retries --------------------------------------------------------------------------------------


def test_429_retry_after_seconds_is_honoured() -> None:
    h = Harness(sequence(huawei_error(429, {"Retry-After": "7"})))
    page = h.run(one_page())
    assert [i.id for i in page.execute_instances] == [1, 2]
    assert h.delays == [7.0]
    assert h.metrics.retries == 1 and h.metrics.throttled == 1 and len(h.requests) == 2
    # the gate paused everyone for as long, from the moment of the 429
    assert h.client is not None and h.client.gate is not None
    assert h.client.gate.throttled == 1
    assert h.client.gate.paused_until == FakeTime.START + 7.0


def test_429_retry_after_http_date_is_honoured() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    h = Harness(sequence(huawei_error(429, {"Retry-After": format_datetime(when, usegmt=True)})))
    h.run(one_page())
    assert len(h.delays) == 1 and 28.0 <= h.delays[0] <= 30.5


def test_retry_after_is_capped_for_the_client_and_the_gate() -> None:
    policy = RetryPolicy(max_retry_after_s=15.0)
    h = Harness(sequence(huawei_error(429, {"Retry-After": "3600"})), retry=policy)
    h.run(one_page())
    assert h.delays == [15.0]
    # the shared pause is capped too: one header must not stall every task for an hour
    assert h.client is not None and h.client.gate is not None
    assert h.client.gate.paused_until == FakeTime.START + 15.0


def test_retry_after_beyond_the_time_budget_gives_up_at_once() -> None:
    policy = RetryPolicy(budget_s=5.0)
    h = Harness(sequence(huawei_error(429, {"Retry-After": "60"})), retry=policy)
    with pytest.raises(errors.RateLimitedError, match="gave up after 1 attempts") as info:
        h.run(one_page())
    assert len(h.requests) == 1 and h.delays == []
    assert info.value.retry_after == 60.0


def test_429_without_retry_after_backs_off_with_jitter_within_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_s=0.5, cap_s=2.0)
    h = Harness(sequence(*[huawei_error(429) for _ in range(7)]), retry=policy)
    h.run(one_page())
    assert len(h.delays) == 7 and h.metrics.retries == 7 and h.metrics.throttled == 7
    for attempt, delay in enumerate(h.delays, start=1):
        assert 0.0 <= delay <= min(policy.cap_s, policy.base_s * 2 ** (attempt - 1))
    assert max(h.delays) <= policy.cap_s


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_to_the_same_result(status: int) -> None:
    ids = gapped_ids(120)
    clean = Harness(batch_server(ids))
    expected = clean.run(walk())

    failures = iter([True, True, False, True, False, False])
    server = batch_server(ids)

    def flaky(request: httpx.Request) -> httpx.Response:
        if next(failures, False):
            return httpx.Response(status, text="<html>bad gateway</html>")
        return server(request)

    h = Harness(flaky)
    assert h.run(walk()) == expected
    assert h.metrics.retries == 3 and h.metrics.server_errors == 3
    assert len(h.requests) == len(clean.requests) + 3


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError],
)
def test_connection_errors_are_retried(failure: type[httpx.TransportError]) -> None:
    h = Harness(sequence(failure("boom"), failure("boom again")))
    page = h.run(one_page())
    assert [i.id for i in page.execute_instances] == [1, 2]
    assert h.metrics.retries == 2 and h.metrics.transport_errors == 2 and len(h.requests) == 3
    assert len(h.delays) == 2


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (lambda: huawei_error(500), errors.ServerError),
        (lambda: huawei_error(503), errors.ServerError),
        (lambda: huawei_error(429), errors.RateLimitedError),
        (lambda: httpx.ConnectError("refused"), errors.TransportError),
        (lambda: httpx.ReadTimeout("slow"), errors.TransportError),
    ],
    ids=["500", "503", "429", "connect", "read-timeout"],
)
def test_attempt_budget_exhausted_raises_typed_error(answer: Any, error: type) -> None:
    policy = RetryPolicy(max_attempts=4)
    h = Harness(sequence(*[answer() for _ in range(10)]), retry=policy)
    with pytest.raises(error, match="gave up after 4 attempts") as info:
        h.run(one_page("tick-budget", 2))
    assert len(h.requests) == 4 and h.metrics.retries == 3 and len(h.delays) == 3
    text = str(info.value)
    assert "ticket=tick-budget" in text and "batch=2" in text and "marker=0" in text


# -- fatal statuses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
    ],
)
@pytest.mark.parametrize(
    ("call", "path"),
    [
        (lambda c: c.get_batch_page("tick-4xx", 5), f"{ORDERS_PATH}/tick-4xx/batches/5"),
        (lambda c: c.get_order("tick-4xx"), f"{ORDERS_PATH}/tick-4xx"),
        (lambda c: c.get_statistics("tick-4xx"), f"{ORDERS_PATH}/tick-4xx/statistics"),
    ],
    ids=["batch", "detail", "statistics"],
)
def test_client_errors_are_fatal_and_typed(status: int, error: type, call: Any, path: str) -> None:
    h = Harness(lambda request: huawei_error(status, {"Retry-After": "1"}))
    with pytest.raises(error) as info:
        h.run(call)
    exc = info.value
    assert len(h.requests) == 1 and h.delays == [] and h.metrics.retries == 0
    assert isinstance(exc, errors.ApiError) and exc.status == status
    assert exc.error_code == "COC.0001"
    assert exc.error_msg == f"the request failed with {status}"
    assert exc.path == path and exc.ticket == "tick-4xx"
    assert "COC.0001" in str(exc) and "tick-4xx" in str(exc)
    assert "gave up" not in str(exc)


def test_error_without_a_huawei_body_still_raises_typed() -> None:
    h = Harness(lambda request: httpx.Response(404, text="no such thing"))
    with pytest.raises(errors.NotFoundError) as info:
        h.run(one_page())
    assert info.value.error_code is None and "no such thing" in str(info.value)


# -- response validation ------------------------------------------------------------------------


BAD_BODIES = {
    "html": (b"<html>gateway</html>", "(the body is not JSON)"),
    "empty": (b"", "(the body is not JSON)"),
    "list": (b"[]", "(a value does not match the documented schema)"),
    "no-wrapper": (b'{"total_instances": 1}', "(a value does not match the documented schema)"),
    "id-str": (b'{"data": {"execute_instances": [{"id": "x"}]}}', "does not match the documented"),
    "total-str": (b'{"data": {"total_instances": "many"}}', "does not match the documented schema"),
    "nested": (
        b'{"data": {"execute_instances": [{"id": 1, "target_instance": {"properties": '
        b'{"host_name": 7}}}]}}',
        "(a value does not match the documented schema)",
    ),
    "not-utf8": (
        b'{"data": {"execute_instances": [{"id": 1, "status": "\xff"}]}}',
        "not valid UTF-8",
    ),
}
#: what the walk itself decodes (ids and total, for paging) is wrong in these
BAD_FOR_PAGING = ["html", "empty", "list", "no-wrapper", "id-str", "total-str"]


def _assert_bad_body_error(h: Harness, exc: errors.ResponseError, fragment: str) -> None:
    text = str(exc)
    assert text.startswith("get_batch: the response is not the documented JSON")
    assert fragment in text
    assert "ticket=tick-body" in text and "batch=9" in text and "marker=0" in text
    assert "gave up" in text
    assert len(h.requests) == RESPONSE_ERROR_ATTEMPTS
    assert h.metrics.bad_bodies == RESPONSE_ERROR_ATTEMPTS


@pytest.mark.parametrize(("body", "fragment"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_2xx_body_is_a_response_error_after_limited_retries(body: bytes, fragment: str) -> None:
    h = Harness(lambda request: httpx.Response(200, content=body))
    with pytest.raises(errors.ResponseError) as info:
        h.run(one_page("tick-body", 9))
    _assert_bad_body_error(h, info.value, fragment)


@pytest.mark.parametrize("case", BAD_FOR_PAGING)
def test_a_walk_retries_a_body_it_cannot_page_by(case: str) -> None:
    body, fragment = BAD_BODIES[case]
    h = Harness(lambda request: httpx.Response(200, content=body))
    with pytest.raises(errors.ResponseError) as info:
        h.run(drain_batch("tick-body", 9))
    _assert_bad_body_error(h, info.value, fragment)


def test_a_bad_body_once_is_retried_to_success() -> None:
    h = Harness(sequence(httpx.Response(200, content=b"{truncated")))
    page = h.run(one_page())
    assert [i.id for i in page.execute_instances] == [1, 2] and h.metrics.retries == 1


def test_unknown_extra_fields_are_tolerated() -> None:
    body = batch_body([11, 12], 2)
    body["request_id"] = "abc"
    body["data"]["new_field"] = {"nested": [1, 2]}
    for row in body["data"]["execute_instances"]:
        row["surprise"] = None
        row["target_instance"]["extra"] = [1]
        row["target_instance"]["properties"]["cpu"] = 4
    h = Harness(lambda request: httpx.Response(200, json=body))
    result, got = h.run(walk())
    assert got == [11, 12] and result.total_instances == 2


def test_typed_records_decode_every_endpoint() -> None:
    bodies = {
        f"{ORDERS_PATH}/{UUID}": {
            "data": {
                "execute_uuid": UUID,
                "status": "FINISHED",
                "properties": {"script_name": "s", "execute_param": {"timeout": 300}},
            }
        },
        f"{ORDERS_PATH}/{UUID}/batches": {
            "data": [{"batch_index": 1, "total_instances": 3}, {"batch_index": 4}]
        },
        f"{ORDERS_PATH}/{UUID}/statistics": {
            "data": {
                "total_instance": 3,
                "execute_statistics": [
                    {"instance_status": "FINISHED", "instance_count": 3, "batch_indexes": [1]}
                ],
            }
        },
    }
    h = Harness(lambda r: httpx.Response(200, json=bodies[r.url.raw_path.decode()]))

    async def call(client: CocClient) -> tuple:
        return (
            await client.get_order(UUID),
            await client.list_batches(UUID),
            await client.get_statistics(UUID),
        )

    detail, batches, stats = h.run(call)
    assert detail.properties.execute_param.timeout == 300
    assert [b.batch_index for b in batches] == [1, 4]
    assert stats.execute_statistics[0].instance_count == 3


# -- secrets --------------------------------------------------------------------------------------

AKSK = ClientSettings(endpoint=ENDPOINT, ak=AK, sk=SK, project_id="proj-1")
TOKEN_SETTINGS = ClientSettings(endpoint=ENDPOINT, token=TOKEN, project_id="proj-1")


def _stuck_page(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=batch_body([5, 6], 99))


FAILURES: dict[str, tuple[Handler, type[errors.CocError]]] = {
    **{
        str(status): (lambda r, s=status: huawei_error(s), cls)
        for status, cls in [
            (400, errors.BadRequestError),
            (401, errors.AuthenticationError),
            (403, errors.PermissionDeniedError),
            (404, errors.NotFoundError),
            (429, errors.RateLimitedError),
            (500, errors.ServerError),
            (503, errors.ServerError),
        ]
    },
    "connect": (
        sequence(*[httpx.ConnectError("refused") for _ in range(9)]),
        errors.TransportError,
    ),
    "timeout": (
        sequence(*[httpx.ReadTimeout("timed out") for _ in range(9)]),
        errors.TransportError,
    ),
    "non-json": (lambda r: httpx.Response(200, content=b"<html>"), errors.ResponseError),
    "wrong-type": (
        lambda r: httpx.Response(200, json={"data": {"execute_instances": [{"id": "x"}]}}),
        errors.ResponseError,
    ),
    "stuck": (_stuck_page, errors.PagingError),
}


@pytest.mark.parametrize("settings", [AKSK, TOKEN_SETTINGS], ids=["aksk", "token"])
@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_secrets_never_leak(
    settings: ClientSettings,
    failure: tuple[Handler, type[errors.CocError]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, error = failure
    secret = SK if settings.sk else TOKEN

    def checked(request: httpx.Request) -> httpx.Response:
        # the credential really is on the wire, so a leak would have something to leak
        if settings.token:
            assert request.headers["x-auth-token"] == TOKEN
        else:
            assert request.headers["authorization"].startswith("SDK-HMAC-SHA256 Access=" + AK)
        assert request.headers["x-project-id"] == "proj-1"
        return handler(request)

    caplog.set_level(logging.DEBUG)
    h = Harness(checked, settings=settings, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(error) as info:
        h.run(walk())
    exc = info.value
    assert h.requests
    shown = [
        str(exc),
        repr(exc),
        repr(exc.args),
        "".join(traceback.format_exception(exc)),
        repr(h.client),
        repr(settings),
        repr(h.client.settings),
        repr(h.client.metrics),
        caplog.text,
        " ".join(r.getMessage() for r in caplog.records),
    ]
    for text in shown:
        assert secret not in text


def test_validation_error_and_reprs_hide_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for settings, secret in ((AKSK, SK), (TOKEN_SETTINGS, TOKEN)):
        h = Harness(lambda request: pytest.fail("sent"), settings=settings)
        with pytest.raises(errors.RequestValidationError) as info:
            h.run(lambda c: c.get_batch_page(UUID, 0))
        for text in (str(info.value), repr(info.value), repr(h.client), repr(settings)):
            assert secret not in text
        assert "<hidden>" in repr(settings)
    assert SK not in caplog.text and TOKEN not in caplog.text


def test_clean_walk_logs_no_secret_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for settings in (AKSK, TOKEN_SETTINGS):
        h = Harness(batch_server(gapped_ids(60)), settings=settings)
        h.run(walk())
        assert len(h.requests) == 2
    assert caplog.records  # httpx does log each request at this level
    assert SK not in caplog.text and TOKEN not in caplog.text


def test_retry_waits_go_to_the_injected_sleep_not_real_time() -> None:
    start = time.monotonic()
    policy = RetryPolicy(max_attempts=50, budget_s=3600.0, base_s=1.0, cap_s=60.0)
    h = Harness(sequence(*[huawei_error(502) for _ in range(20)]), retry=policy)
    h.run(one_page())
    assert len(h.requests) == 21 and len(h.delays) == 20
    assert h.time.now == pytest.approx(FakeTime.START + sum(h.delays))
    assert time.monotonic() - start < 5.0


def test_time_budget_counts_the_injected_clock() -> None:
    # 6 s waited of a 10 s budget: another 6 s wait would end past the deadline
    policy = RetryPolicy(max_attempts=50, budget_s=10.0)
    h = Harness(
        sequence(*[huawei_error(503, {"Retry-After": "6"}) for _ in range(5)]), retry=policy
    )
    with pytest.raises(errors.ServerError, match="gave up after 2 attempts"):
        h.run(one_page())
    assert len(h.requests) == 2 and h.delays == [6.0]
