"""AK/SK signing against the official SDK's signer, and server-side verification."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import requests
from huaweicloudsdkcoc.v1 import CocClient
from huaweicloudsdkcoc.v1.model import GetScriptJobBatchRequest, ListScriptJobsRequest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest

from pipelines.coc.auth import (
    AkSkAuth,
    TokenAuth,
    canonical_query,
    canonical_uri,
    format_sdk_date,
    parse_authorization,
    parse_query,
    verify_signature,
)

AK = "HPUAEXAMPLEAK0000001"
SK = "sk-example/+=secret-0123456789abcdef"
PROJECT = "0605767a3300d5762fb0c0186d9e1234"
HOST = "coc.cn-north-4.myhuaweicloud.com"
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
SDK_DATE = "20240506T070809Z"
ORDERS = "/v1/job/script/orders"


def order_path(execute_uuid: str, tail: str = "") -> str:
    """A resource path with the uuid encoded as one segment, as the SDK's client does."""
    return f"{ORDERS}/{quote(execute_uuid, safe='')}{tail}"


@dataclass(frozen=True)
class Case:
    id: str
    path: str = ORDERS
    params: list[tuple[str, str]] = field(default_factory=list)
    method: str = "GET"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    project_id: str | None = PROJECT


JSON_BODY = json.dumps({"execute_uuid": "AbC-123", "name": "ünïcode ✓", "n": [1, 2]}).encode()

CASES = [
    Case("list_plain", params=[("limit", "50"), ("marker", "0")]),
    Case("no_query_no_project", path=order_path("abc123"), project_id=None),
    Case("space_in_value", params=[("creator", "a b  c ")]),
    Case("plus_in_value", params=[("creator", "a+b"), ("status", "+")]),
    Case("slash_in_value", params=[("creator", "dept/ops/a")]),
    Case("percent_in_value", params=[("creator", "100%"), ("status", "%2F%20")]),
    Case("equals_ampersand_in_value", params=[("creator", "k=v&x=y"), ("status", "==&&")]),
    Case("unicode_values", params=[("creator", "张三"), ("status", "é ✓ 🙂")]),
    Case(
        "repeated_unsorted",
        params=[("status", "PROCESSING"), ("limit", "10"), ("status", "FINISHED"), ("status", "")],
    ),
    Case("empty_values", params=[("creator", ""), ("marker", "0"), ("status", "")]),
    Case(
        "unsorted_keys",
        params=[
            ("start_time", "1714978089000"),
            ("end_time", "1715064489000"),
            ("limit", "50"),
            ("creator", "zhang.san"),
        ],
    ),
    Case("reserved_and_tilde", params=[("creator", "~*'()!$,;:@[]")]),
    Case("special_keys", params=[("a b", "1"), ("a+b", "2"), ("a%b", "3"), ("ä", "4")]),
    Case(
        "uuid_with_slash_query_hash_dots",
        path=order_path("a/../b?c#d%e", "/batches/2"),
        params=[("limit", "50"), ("marker", "12345")],
    ),
    Case("uuid_with_space_plus_unicode", path=order_path("x y+é", "/statistics")),
    Case("uuid_already_encoded_text", path=order_path("%2F%3F", "/batches")),
    Case("trailing_slash", path=ORDERS + "/", params=[("limit", "1")]),
    Case(
        "sdk_like_headers",
        path=order_path("AbC-123", "/batches/20"),
        params=[("status", "FINISHED"), ("limit", "50"), ("marker", "0")],
        headers={
            "Content-Type": "application/json",
            "User-Agent": "huaweicloud-usdk-python/3.0",
            "X-Language": "en-us",
        },
    ),
    Case(
        "post_json_body",
        method="POST",
        params=[("dry_run", "true")],
        body=JSON_BODY,
        headers={"Content-Type": "application/json;charset=UTF-8"},
    ),
    Case(
        "post_text_unsigned_payload",
        method="POST",
        path=order_path("AbC-123", "/operation"),
        body=b"plain text body",
        headers={"Content-Type": "text/plain"},
        project_id=None,
    ),
]


def sign_ours(case: Case, *, sk: str = SK) -> httpx.Request:
    request = httpx.Request(
        case.method,
        f"https://{HOST}{case.path}",
        params=case.params,
        headers=case.headers,
        content=case.body or None,
    )
    auth = AkSkAuth(ak=AK, sk=sk, project_id=case.project_id, clock=lambda: NOW)
    return next(auth.sync_auth_flow(request))


def sign_sdk(case: Case) -> SdkRequest:
    """The same logical request signed the SDK's way: credentials add X-Project-Id, the
    signer adds Host, picks the preset X-Sdk-Date and sets ``uri`` to the wire form."""
    request = SdkRequest(
        method=case.method,
        schema="https",
        host=HOST,
        resource_path=case.path,
        query_params=list(case.params),
        header_params={**case.headers, "X-Sdk-Date": SDK_DATE},
        body=case.body or None,
    )
    return BasicCredentials(AK, SK, case.project_id).sign_request(request)


def wire_of(request: httpx.Request) -> dict[str, Any]:
    """What an ASGI server hands over: raw path, raw query bytes, lower-case headers, body."""
    return {
        "method": request.method,
        "raw_path": request.url.raw_path.partition(b"?")[0],
        "query_string": request.url.query,
        "headers": {name.lower(): value for name, value in request.headers.items()},
        "body": request.content,
    }


def verify(wire: dict[str, Any], **overrides: Any) -> str | None:
    arguments = {"credentials": {AK: SK}, "now": NOW, **wire, **overrides}
    return verify_signature(**arguments)


by_id = pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])


@by_id
def test_authorization_matches_sdk_signer(case: Case) -> None:
    ours = sign_ours(case)
    sdk = sign_sdk(case)
    assert ours.headers["Authorization"] == sdk.header_params["Authorization"]
    assert ours.headers["X-Sdk-Date"] == SDK_DATE


@by_id
def test_verify_accepts_our_wire_form(case: Case) -> None:
    assert verify(wire_of(sign_ours(case))) is None


@by_id
def test_verify_accepts_sdk_signed_request(case: Case) -> None:
    sdk = sign_sdk(case)
    path, _, query = sdk.uri.partition("?")
    wire = {
        "method": sdk.method,
        "raw_path": path,
        "query_string": query.encode("ascii"),
        "headers": {name.lower(): value for name, value in sdk.header_params.items()},
        "body": sdk.body or b"",
    }
    assert verify(wire) is None


def _other_query(wire: dict[str, Any]) -> dict[str, Any]:
    params = parse_query(wire["query_string"]) or [("limit", "50")]
    key, value = params[0]
    params[0] = (key, value + "x")
    return {"query_string": urlencode(params).encode("ascii")}


def _without(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(wire: dict[str, Any]) -> dict[str, Any]:
        return {"headers": {k: v for k, v in wire["headers"].items() if k != name}}

    return change


def _header(name: str, value: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(wire: dict[str, Any]) -> dict[str, Any]:
        return {"headers": {**wire["headers"], name: value}}

    return change


TAMPERS: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], str]] = {
    "query_value": (_other_query, "signature mismatch"),
    "path": (lambda w: {"raw_path": w["raw_path"] + b"x"}, "signature mismatch"),
    "path_case": (lambda w: {"raw_path": w["raw_path"].upper()}, "signature mismatch"),
    "method": (lambda w: {"method": "DELETE"}, "signature mismatch"),
    "body": (lambda w: {"body": w["body"] + b" "}, "signature mismatch"),
    "date_within_skew": (_header("x-sdk-date", "20240506T070810Z"), "signature mismatch"),
    "host": (_header("host", "evil.example.com"), "signature mismatch"),
    "sk": (lambda w: {"credentials": {AK: SK + "x"}}, "signature mismatch"),
    "unknown_ak": (lambda w: {"credentials": {"OTHERAK": SK}}, "unknown access key"),
    "no_authorization": (_without("authorization"), "missing Authorization"),
    "garbled_authorization": (
        _header("authorization", "Basic Zm9vOmJhcg=="),
        "malformed Authorization",
    ),
    "no_date": (_without("x-sdk-date"), "missing X-Sdk-Date"),
    "bad_date": (_header("x-sdk-date", "2024-05-06 07:08:09"), "malformed X-Sdk-Date"),
    "stale": (lambda w: {"now": NOW + timedelta(minutes=16)}, "X-Sdk-Date out of range"),
    "early": (lambda w: {"now": NOW - timedelta(minutes=16)}, "X-Sdk-Date out of range"),
    "no_host": (_without("host"), "signed header missing: host"),
}


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_verify_rejects_tampering(tamper: str) -> None:
    """Each tampering of every case (the cases in one test: each is a call of microseconds,
    and 20 x 16 tests would cost pytest more than the checks)."""
    change, expected = TAMPERS[tamper]
    for case in CASES:
        wire = wire_of(sign_ours(case))
        reason = expected
        if tamper == "body" and case.headers.get("Content-Type") == "text/plain":
            reason = None  # the SDK's UNSIGNED-PAYLOAD rule: a non-JSON body is not signed
        assert verify(wire, **change(wire)) == reason, case.id


def test_verify_rejects_a_wrong_declared_body_hash() -> None:
    wire = wire_of(sign_ours(CASES[-1]))
    headers = {**wire["headers"], "x-sdk-content-sha256": "0" * 64}
    assert verify(wire, headers=headers) == "body hash mismatch"


def test_signed_headers_skip_transport_headers() -> None:
    with httpx.Client(headers={"X-Language": "en-us"}) as client:
        request = client.build_request("POST", f"https://{HOST}{ORDERS}", json={"a": 1})
    auth = AkSkAuth(ak=AK, sk=SK, project_id=PROJECT, clock=lambda: NOW)
    signed = next(auth.sync_auth_flow(request))
    parsed = parse_authorization(signed.headers["Authorization"])
    assert parsed is not None
    assert parsed[1] == [
        "accept",
        "content-type",
        "host",
        "user-agent",
        "x-language",
        "x-project-id",
        "x-sdk-date",
    ]
    assert verify(wire_of(signed)) is None


def test_auth_through_an_httpx_client() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(verify(wire_of(request)))
        return httpx.Response(200, json={"data": {}})

    auth = AkSkAuth(ak=AK, sk=SK, project_id=PROJECT, clock=lambda: NOW)
    with httpx.Client(auth=auth, transport=httpx.MockTransport(handler)) as client:
        client.get(f"https://{HOST}{order_path('a/b c', '/batches/1')}", params={"q": "x y+z"})
        client.get(f"https://{HOST}{ORDERS}", params=[("b", "2"), ("a", ""), ("a", "1")])
    assert seen == [None, None]


def test_clock_is_read_as_utc() -> None:
    eastern = NOW.astimezone(timezone(timedelta(hours=8)))
    assert format_sdk_date(eastern) == SDK_DATE
    assert format_sdk_date(NOW.replace(tzinfo=None)) == SDK_DATE
    request = httpx.Request("GET", f"https://{HOST}{ORDERS}")
    signed = next(AkSkAuth(ak=AK, sk=SK, clock=lambda: eastern).sync_auth_flow(request))
    assert signed.headers["X-Sdk-Date"] == SDK_DATE
    assert "x-project-id" not in signed.headers


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("/v1/a", "/v1/a/"),
        ("/v1/a%2Fb/c", "/v1/a/b/c/"),
        ("/v1/a%20b+c~", "/v1/a%20b%2Bc~/"),
        ("/v1/%C3%A9/", "/v1/%C3%A9/"),
    ],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert canonical_uri(path) == expected


def test_canonical_query_sorts_decoded_pairs() -> None:
    params = parse_query(b"b=2&a=x+y&a=%2B&c&&a=")
    assert params == [("b", "2"), ("a", "x y"), ("a", "+"), ("c", ""), ("a", "")]
    assert canonical_query(params) == "a=&a=%2B&a=x%20y&b=2&c="


# The official client end to end: what `requests` puts on the wire for a CocClient call.


@pytest.fixture
def sdk_wire(monkeypatch: pytest.MonkeyPatch) -> list[requests.PreparedRequest]:
    sent: list[requests.PreparedRequest] = []

    def send(self: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, **_: Any):
        sent.append(request)
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/json"
        response._content = b"{}"
        response.request = request
        response.url = request.url or ""
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    return sent


def coc_client() -> CocClient:
    credentials = BasicCredentials(AK, SK, PROJECT)
    return (
        CocClient.new_builder()
        .with_credentials(credentials)
        .with_endpoints([f"https://{HOST}"])
        .build()
    )


def prepared_wire(request: requests.PreparedRequest) -> dict[str, Any]:
    path, _, query = request.path_url.partition("?")
    body = request.body or b""
    return {
        "method": request.method,
        "raw_path": path,
        "query_string": query.encode("ascii"),
        "headers": {name.lower(): value for name, value in request.headers.items()},
        "body": body.encode() if isinstance(body, str) else body,
    }


def test_sdk_client_requests_verify(sdk_wire: list[requests.PreparedRequest]) -> None:
    client = coc_client()
    client.get_script_job_batch(
        GetScriptJobBatchRequest(
            execute_uuid="a/..?#%b c+é",
            batch_index=3,
            status="a b+c/d%e=f&g é",
            limit=50,
            marker=0,
            x_project_id=PROJECT,  # also set by the credentials: signed twice, sent once
            x_user_profile="é",  # non-ASCII header: UTF-8 bytes on the wire
        )
    )
    client.list_script_jobs(ListScriptJobsRequest(limit=5, creator="", status="FINISHED"))
    wires = [prepared_wire(request) for request in sdk_wire]
    assert wires[0]["raw_path"] == order_path("a/..?#%b c+é", "/batches/3")
    assert (
        wires[0]["query_string"] == b"limit=50&marker=0&status=a%20b%2Bc%2Fd%25e%3Df%26g%20%C3%A9"
    )
    assert wires[1]["query_string"] == b"creator=&limit=5&status=FINISHED"
    for wire in wires:
        assert verify(wire, now=None) is None


def test_sdk_repeated_integer_params_are_sent_in_numeric_order() -> None:
    """The SDK sorts raw values (9 < 10) and sends that order; sorting decoded strings
    would give "10" < "9", so the verifier also tries the wire query verbatim."""
    request = SdkRequest(
        method="GET",
        schema="https",
        host=HOST,
        resource_path=ORDERS,
        query_params=[("limit", 10), ("limit", 9), ("ok", True)],
        header_params={"X-Sdk-Date": SDK_DATE},
    )
    BasicCredentials(AK, SK).sign_request(request)
    path, _, query = request.uri.partition("?")
    assert query == "limit=9&limit=10&ok=true"
    headers = {name.lower(): value for name, value in request.header_params.items()}
    wire = {"method": "GET", "raw_path": path, "headers": headers, "body": b""}
    assert verify(wire, query_string=query.encode()) is None
    assert canonical_query(parse_query(query)) == "limit=10&limit=9&ok=true"
    assert verify(wire, query_string=b"limit=9&limit=11&ok=true") == "signature mismatch"


def test_sdk_dot_segment_uuid_cannot_verify(sdk_wire: list[requests.PreparedRequest]) -> None:
    """A uuid of exactly ".." is not encoded by quote(); urllib3 then drops the dot segment
    from the wire path while the SDK signed it, so no server can verify the request."""
    coc_client().get_script_job_batch(GetScriptJobBatchRequest(execute_uuid="..", batch_index=3))
    wire = prepared_wire(sdk_wire[0])
    assert wire["raw_path"] == "/v1/job/script/batches/3"
    assert verify(wire, now=None) == "signature mismatch"


# Secrets stay out of reprs.


def test_aksk_repr_hides_secret() -> None:
    auth = AkSkAuth(ak=AK, sk=SK, project_id=PROJECT)
    for text in (repr(auth), str(auth), f"{auth!r} {auth}"):
        assert SK not in text
        assert "<hidden>" in text
    assert AK in repr(auth)


def test_token_auth_sets_headers_and_hides_token() -> None:
    token = "MIIEXAMPLE-token-value-0123456789"
    auth = TokenAuth(token=token, project_id=PROJECT)
    request = next(auth.sync_auth_flow(httpx.Request("GET", f"https://{HOST}{ORDERS}")))
    assert request.headers["X-Auth-Token"] == token
    assert request.headers["X-Project-Id"] == PROJECT
    assert "authorization" not in request.headers
    for text in (repr(auth), str(auth)):
        assert token not in text
        assert "<hidden>" in text


@pytest.mark.parametrize("kwargs", [{"ak": "", "sk": SK}, {"ak": AK, "sk": ""}])
def test_aksk_requires_both_keys(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        AkSkAuth(**kwargs)
