"""Async client of the COC script-order API: one ``httpx.AsyncClient`` per run.

Every call goes through one path (``_get``): validate the parameters, pass the shared
``RequestGate`` (rate and concurrency), send, decode and validate the body with msgspec,
and on a retriable failure wait (``Retry-After`` or full-jitter backoff) and try again
within the attempt and time budget. Errors carry the ticket, batch, marker and request path,
never a header or a credential.

The paged endpoints are walked as async iterators (``iter_batch``, ``iter_orders``; see
``pagination.py``): the caller pulls page after page, one paging loop behind both.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
import msgspec
import orjson

from pipelines.coc import errors
from pipelines.coc.auth import AkSkAuth, TokenAuth
from pipelines.coc.gate import RequestGate
from pipelines.coc.metrics import RequestMetrics
from pipelines.coc.models import (
    BATCH_STATUS_FILTERS,
    DECODE_ERRORS,
    BatchPage,
    BatchPageIds,
    BatchSummary,
    OrderDetail,
    OrderPage,
    Statistics,
    describe_bad_body,
    envelope_type,
)
from pipelines.coc.pagination import BatchPages, OrderPages
from pipelines.coc.retry import (
    RESPONSE_ERROR_ATTEMPTS,
    RetryPolicy,
    backoff_s,
    is_retriable,
    parse_retry_after,
)
from pipelines.coc.settings import ClientSettings
from pipelines.coc.shared_rate import SharedRateBudget, budget_key
from pipelines.coc.transport import AiohttpTransport

log = logging.getLogger(__name__)

T = TypeVar("T")

#: what ``on_response`` is given: (endpoint, path, query parameters, where, status, body)
ResponseHook = Callable[[str, str, Sequence[tuple[str, str]], errors.Where, int, bytes], None]

MAX_MARKER = 2_147_483_647
MAX_UUID_LEN = 26
ORDERS_PATH = "/v1/job/script/orders"

_DECODERS: dict[Any, msgspec.json.Decoder] = {
    t: msgspec.json.Decoder(envelope_type(t))
    for t in (OrderPage, OrderDetail, list[BatchSummary], BatchPage, BatchPageIds, Statistics)
}


def path_segment(value: str) -> str:
    """Percent-encode one path segment so that no value can change which URL is called.

    ``/``, ``?``, ``#`` and ``%`` are encoded by ``quote``; dots are encoded too, so that a
    segment of ``.`` or ``..`` can never be read as a relative path step.
    """
    return quote(value, safe="").replace(".", "%2E")


def check_uuid(execute_uuid: object) -> str:
    if not isinstance(execute_uuid, str) or not 1 <= len(execute_uuid) <= MAX_UUID_LEN:
        raise errors.RequestValidationError(
            f"execute_uuid must be a string of 1..{MAX_UUID_LEN} characters, got {execute_uuid!r}"
        )
    return execute_uuid


def _check_range(name: str, value: object, low: int, high: int, where: errors.Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise errors.RequestValidationError(
            f"{name} must be an integer within {low}..{high}, got {value!r}", **where
        )
    return value


def build_auth(settings: ClientSettings) -> httpx.Auth | None:
    if settings.ak and settings.sk:
        return AkSkAuth(ak=settings.ak, sk=settings.sk, project_id=settings.project_id)
    if settings.token:
        return TokenAuth(token=settings.token, project_id=settings.project_id)
    return None


def _verify(settings: ClientSettings) -> ssl.SSLContext | bool:
    if settings.ca_bundle:
        try:
            return ssl.create_default_context(cafile=settings.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise errors.ConfigError(
                f"COC_CA_BUNDLE {settings.ca_bundle!r} cannot be loaded: {exc}"
            ) from None
    return True


class CocClient:
    """Use as ``async with CocClient(settings) as client:``, inside one event loop.

    ``clock`` (seconds, monotonic) and ``sleep`` are the client's sense of time, shared by the
    rate gate and the retry waits and deadline; tests pass a fake pair.
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        on_response: ResponseHook | None = None,
    ) -> None:
        self.settings = settings
        #: given each accepted body with the request that produced it (never its headers):
        #: the raw archive's capture (``pipelines/lake/raw_archive.py``)
        self.on_response = on_response
        self.retry = retry or RetryPolicy(
            max_attempts=settings.max_attempts, budget_s=settings.retry_budget_s
        )
        self.metrics = RequestMetrics()
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._http: httpx.AsyncClient | None = None
        self.gate: RequestGate | None = None
        self._budget: SharedRateBudget | None = None

    def __repr__(self) -> str:
        return f"CocClient(endpoint={self.settings.endpoint!r}, auth={self.settings.auth_kind})"

    async def __aenter__(self) -> CocClient:
        s = self.settings
        limits = httpx.Limits(
            max_connections=s.concurrency, max_keepalive_connections=s.concurrency
        )
        verify = _verify(s)
        transport = self._transport
        if transport is None and s.transport == "aiohttp":
            transport = AiohttpTransport(
                verify=verify, max_connections=s.concurrency, timeout_s=s.timeout_s
            )
        self._base = s.endpoint.rstrip("/")
        self._http = httpx.AsyncClient(
            auth=build_auth(s),
            verify=verify,
            timeout=httpx.Timeout(s.timeout_s),
            limits=limits,
            follow_redirects=False,
            transport=transport,
            headers={"accept": "application/json", "user-agent": "coc-warehouse/0.1"},
        )
        self._budget = None
        if s.redis_url is not None and s.max_rps is not None:
            self._budget = SharedRateBudget(
                s.redis_url,
                key=budget_key(s.endpoint, s.ak, s.project_id),
                max_rps=s.max_rps,
                sleep=self._sleep,
            )
            try:
                await self._budget.__aenter__()
            except BaseException:
                await self._http.aclose()
                self._http = None
                raise
        self.gate = RequestGate(
            max_rps=s.max_rps,
            concurrency=s.concurrency,
            adaptive=s.adaptive,
            clock=self._clock,
            sleep=self._sleep,
            budget=self._budget,
        )
        return self

    def _url(self, path: str, params: Sequence[tuple[str, str]]) -> httpx.URL:
        """The absolute URL, parsed once (httpx would parse a path plus params three times)."""
        query = urlencode(params, quote_via=quote) if params else ""
        return httpx.URL(f"{self._base}{path}?{query}" if query else f"{self._base}{path}")

    async def __aexit__(self, *exc_info: object) -> None:
        if self._budget is not None:
            await self._budget.__aexit__(*exc_info)
            self._budget = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- endpoints -------------------------------------------------------------------------

    async def list_orders_page(
        self,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        marker: int | None = None,
        limit: int | None = None,
        creator: str | None = None,
        status: str | None = None,
    ) -> OrderPage:
        limit = self.settings.list_limit if limit is None else limit
        where: errors.Where = {"marker": marker}
        params: list[tuple[str, str]] = [
            ("limit", str(_check_range("limit", limit, 1, 100, where)))
        ]
        if marker is not None:
            params.append(("marker", str(_check_range("marker", marker, 0, 2**63 - 1, where))))
        if start_ms is not None:
            params.append(("start_time", str(start_ms)))
        if end_ms is not None:
            params.append(("end_time", str(end_ms)))
        if creator is not None:
            params.append(("creator", creator))
        if status is not None:
            params.append(("status", status))
        page = await self._get("list_orders", ORDERS_PATH, params, OrderPage, where)
        return page or OrderPage()

    async def get_order(self, execute_uuid: str) -> OrderDetail:
        where: errors.Where = {"ticket": execute_uuid}
        path = f"{ORDERS_PATH}/{path_segment(check_uuid(execute_uuid))}"
        detail = await self._get("get_order", path, [], OrderDetail, where)
        if detail is None:
            raise errors.ResponseError("ticket detail is null", path=path, **where)
        return detail

    async def list_batches(self, execute_uuid: str) -> list[BatchSummary]:
        where: errors.Where = {"ticket": execute_uuid}
        path = f"{ORDERS_PATH}/{path_segment(check_uuid(execute_uuid))}/batches"
        batches = await self._get("list_batches", path, [], list[BatchSummary], where)
        return batches or []

    async def get_batch_page(
        self,
        execute_uuid: str,
        batch_index: int,
        *,
        marker: int = 0,
        limit: int | None = None,
        status: str | None = None,
    ) -> BatchPage:
        """One page of a batch, fully decoded and validated."""
        page, _ = await self._batch_page(
            execute_uuid, batch_index, marker=marker, limit=limit, status=status, payload=BatchPage
        )
        return page

    async def _batch_page(
        self,
        execute_uuid: str,
        batch_index: int,
        *,
        marker: int,
        limit: int | None,
        status: str | None,
        payload: type,
    ) -> tuple[Any, bytes]:
        limit = self.settings.page_limit if limit is None else limit
        where: errors.Where = {"ticket": execute_uuid, "batch": batch_index, "marker": marker}
        check_uuid(execute_uuid)
        _check_range("batch_index", batch_index, 1, 20, where)
        _check_range("limit", limit, 1, 50, where)
        _check_range("marker", marker, 0, MAX_MARKER, where)
        params = [("limit", str(limit)), ("marker", str(marker))]
        if status is not None:
            if status not in BATCH_STATUS_FILTERS:
                raise errors.RequestValidationError(
                    f"status must be one of {sorted(BATCH_STATUS_FILTERS)}, got {status!r}",
                    **where,
                )
            params.append(("status", status))
        path = f"{ORDERS_PATH}/{path_segment(execute_uuid)}/batches/{batch_index}"
        page, body = await self._get("get_batch", path, params, payload, where, with_body=True)
        return (page or payload()), body

    async def get_statistics(self, execute_uuid: str) -> Statistics:
        where: errors.Where = {"ticket": execute_uuid}
        path = f"{ORDERS_PATH}/{path_segment(check_uuid(execute_uuid))}/statistics"
        stats = await self._get("statistics", path, [], Statistics, where)
        return stats or Statistics()

    # -- paging walks ----------------------------------------------------------------------

    def iter_orders(
        self,
        *,
        start_ms: int,
        end_ms: int,
        creator: str | None = None,
        status: str | None = None,
    ) -> OrderPages:
        """``async for orders in client.iter_orders(...)``: every ticket in the window."""

        def fetch(marker: int | None) -> Awaitable[OrderPage]:
            return self.list_orders_page(
                start_ms=start_ms, end_ms=end_ms, marker=marker, creator=creator, status=status
            )

        return OrderPages(fetch, path=ORDERS_PATH, limit=self.settings.list_limit)

    def iter_batch(
        self, execute_uuid: str, batch_index: int, *, status: str | None = None
    ) -> BatchPages:
        """``async for page in client.iter_batch(...)``: every kept page of one batch, as
        received (``RawPage``); ``.decoded()`` gives the same pages' instances, decoded."""

        async def fetch(marker: int) -> tuple[BatchPageIds, bytes]:
            return await self._batch_page(
                execute_uuid,
                batch_index,
                marker=marker,
                limit=None,
                status=status,
                payload=BatchPageIds,
            )

        return BatchPages(
            execute_uuid,
            batch_index,
            fetch,
            limit=self.settings.page_limit,
            filtered=status is not None,
        )

    # -- the one request path --------------------------------------------------------------

    async def _get(
        self,
        endpoint: str,
        path: str,
        params: Sequence[tuple[str, str]],
        payload: Any,
        where: errors.Where,
        *,
        with_body: bool = False,
    ) -> Any:
        """The decoded ``data`` of a GET, retried as needed; with the raw body if asked."""
        if self._http is None or self.gate is None:
            raise RuntimeError("CocClient used outside `async with`")
        decoder = _DECODERS[payload]
        policy = self.retry
        deadline = self._clock() + policy.budget_s
        attempt = 0
        bad_bodies = 0
        while True:
            attempt += 1
            try:
                data, body = await self._attempt(endpoint, path, params, decoder, where)
                return (data, body) if with_body else data
            except errors.CocError as exc:
                failure = exc
            if isinstance(failure, errors.ResponseError):
                bad_bodies += 1
            delay = self._delay(failure, attempt)
            out_of_budget = (
                attempt >= policy.max_attempts
                or self._clock() + delay > deadline
                or bad_bodies >= RESPONSE_ERROR_ATTEMPTS
            )
            if not is_retriable(failure) or out_of_budget:
                if is_retriable(failure):
                    failure.message += f" (gave up after {attempt} attempts)"
                raise failure
            self.metrics.retries += 1
            log.warning(
                "retrying %s in %.2fs (attempt %d of %d): %s",
                endpoint,
                delay,
                attempt + 1,
                policy.max_attempts,
                failure,
            )
            await self._sleep(delay)

    def _delay(self, failure: errors.CocError, attempt: int) -> float:
        retry_after = getattr(failure, "retry_after", None)
        if retry_after is not None:  # capped before the gate sees it: its pause is shared
            retry_after = min(retry_after, self.retry.max_retry_after_s)
        if isinstance(failure, errors.ApiError) and failure.status == 429:
            assert self.gate is not None
            self.gate.throttle(retry_after)
        if retry_after is not None:
            return retry_after
        return backoff_s(attempt, self.retry)

    async def _attempt(
        self,
        endpoint: str,
        path: str,
        params: Sequence[tuple[str, str]],
        decoder: msgspec.json.Decoder,
        where: errors.Where,
    ) -> Any:
        assert self._http is not None and self.gate is not None
        m = self.metrics
        async with self.gate.slot():
            m.sent(endpoint)
            try:
                response = await self._http.get(self._url(path, params))
            except httpx.TransportError as exc:
                m.transport_errors += 1
                if _certificate_failure(exc):
                    raise errors.ConfigError(
                        f"the TLS certificate of {self.settings.endpoint} is not trusted "
                        f"({exc}); for a private certificate authority set COC_CA_BUNDLE",
                        path=path,
                        **where,
                    ) from None
                raise errors.TransportError(
                    f"{type(exc).__name__} calling {endpoint}: {exc}", path=path, **where
                ) from None
        body = response.content
        m.bytes_received += len(body)
        status = response.status_code
        if status != 429:
            self.gate.accepted()
        if 200 <= status < 300:
            try:
                data = decoder.decode(body).data
            except DECODE_ERRORS as exc:
                m.bad_bodies += 1
                raise errors.ResponseError(
                    f"{endpoint}: {describe_bad_body(body, exc)}",
                    path=path,
                    **where,
                ) from None
            if self.on_response is not None:
                self.on_response(endpoint, path, params, where, status, body)
            return data, body
        if status == 429:
            m.throttled += 1
        elif status >= 500:
            m.server_errors += 1
        raise _api_error(endpoint, status, body, response.headers, path, where)


def _certificate_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _api_error(
    endpoint: str,
    status: int,
    body: bytes,
    headers: httpx.Headers,
    path: str,
    where: errors.Where,
) -> errors.ApiError:
    code = msg = None
    try:
        doc = orjson.loads(body)
        if isinstance(doc, dict):
            code = doc.get("error_code")
            msg = doc.get("error_msg")
            code = None if code is None else str(code)
            msg = None if msg is None else str(msg)[:500]
    except orjson.JSONDecodeError:
        pass
    detail = f"{code}: {msg}" if code or msg else body[:200].decode("utf-8", "replace")
    cls = errors.api_error_class(status)
    return cls(
        f"{endpoint} answered HTTP {status} ({detail})",
        status=status,
        error_code=code,
        error_msg=msg,
        retry_after=parse_retry_after(headers.get("retry-after")) if status in (429, 503) else None,
        path=path,
        **where,
    )
