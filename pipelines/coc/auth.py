"""Huawei Cloud request authentication: AK/SK signing (``SDK-HMAC-SHA256``) and IAM tokens.

The AK/SK algorithm, byte for byte as ``huaweicloudsdkcore.signer.signer.Signer`` does it::

    CanonicalRequest =
        METHOD                      upper case
        + "\\n" + CanonicalURI      raw path, percent-decoded, split on "/", each segment
                                    re-encoded with quote(safe="~"), "/" appended if absent
        + "\\n" + CanonicalQuery    decoded (key, value) pairs sorted as tuples, each side
                                    encoded with quote(safe="~"), "k=v" joined with "&"
        + "\\n" + CanonicalHeaders  "name:value\\n" per signed header (lower-case name,
                                    stripped value), in signed-header order
        + "\\n" + SignedHeaders     sorted lower-case names joined with ";"
        + "\\n" + PayloadHash       hex SHA-256 of the body (the empty-string hash for no
                                    body), or the X-Sdk-Content-Sha256 header's value
    StringToSign  = "SDK-HMAC-SHA256\\n" + X-Sdk-Date + "\\n" + hex(SHA-256(CanonicalRequest))
    Signature     = hex(HMAC-SHA256(sk, StringToSign))
    Authorization = "SDK-HMAC-SHA256 Access=<ak>, SignedHeaders=<names>, Signature=<hex>"

``X-Sdk-Date`` is UTC in ``%Y%m%dT%H%M%SZ``. The SDK signs every header it set itself
(``Content-Type``, ``Host``, ``User-Agent``, ``X-Project-Id``, ``X-Sdk-Date``) except names
containing ``_``. When ``Content-Type`` is neither JSON nor BSON it adds
``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` and signs that literal instead of the body hash.
We sign every header on the request except names containing ``_`` and the transport-level
ones in ``UNSIGNED_HEADERS``, which the HTTP stack or a proxy may add or rewrite.

The helpers are pure (strings and bytes in, strings out) so the same code signs on the
client (``AkSkAuth``) and verifies in the simulator (``verify_signature``). The verifier
rebuilds the canonical request from the wire: the raw path is percent-decoded before it is
split, so ``%2F`` inside one segment signs like ``/``; the query string is parsed with form
rules (``+`` is a space), so httpx's ``quote_plus`` form and the SDK's ``%20`` form give the
same pairs. The SDK puts its canonical query string itself on the wire, which matters only
where its sort differs from a sort of decoded strings (repeated integer parameters sort as
numbers), so the verifier also tries the wire query string verbatim. A path segment that
is exactly ``.`` or ``..`` cannot be verified: the SDK signs it, then urllib3 drops it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote, unquote_to_bytes

import httpx

ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
CONTENT_SHA256_HEADER = "x-sdk-content-sha256"
DEFAULT_MAX_SKEW_S = 900

# Hop-by-hop and framing headers: added or rewritten below the auth layer, never signed.
UNSIGNED_HEADERS = frozenset(
    {
        "accept-encoding",
        "authorization",
        "connection",
        "content-length",
        "expect",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def format_sdk_date(moment: datetime) -> str:
    """``moment`` as an ``X-Sdk-Date`` value; a naive datetime is taken to be UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(SDK_DATE_FORMAT)


def parse_sdk_date(value: str) -> datetime:
    """An ``X-Sdk-Date`` value as an aware UTC datetime; ``ValueError`` if malformed."""
    return datetime.strptime(value, SDK_DATE_FORMAT).replace(tzinfo=UTC)


def _encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """The canonical URI of a raw (percent-encoded) request path.

    Decoding comes before splitting, as in the SDK: ``/orders/a%2Fb`` canonicalises to
    ``/orders/a/b/``. Every segment is re-encoded and a trailing ``/`` is always present.
    """
    uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def parse_query(query: bytes | str) -> list[tuple[str, str]]:
    """Decode a raw query string into (key, value) pairs, in wire order.

    Form rules: ``+`` is a space, ``%XX`` is a byte, bytes are read as UTF-8; a piece
    without ``=`` has an empty value and empty pieces are skipped (``parse_qsl`` with
    ``keep_blank_values=True``, but tolerant of raw non-ASCII bytes).
    """
    raw = query.encode("utf-8") if isinstance(query, str) else query
    pairs = []
    for piece in raw.split(b"&"):
        if not piece:
            continue
        key, _, value = piece.partition(b"=")
        pairs.append((_form_decode(key), _form_decode(value)))
    return pairs


def _form_decode(part: bytes) -> str:
    return unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8", "replace")


def canonical_query(params: Sequence[tuple[str, str]]) -> str:
    """The canonical query string of decoded pairs: sorted as tuples, encoded, ``&``-joined.

    Repeated keys stay repeated (sorted by value); an empty value gives ``key=``.
    """
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in sorted(params))


def signed_header_names(names: Iterable[str]) -> list[str]:
    """The names we sign out of ``names``: lower-cased, sorted, without duplicates,
    without names containing ``_`` (skipped by the SDK too) or in ``UNSIGNED_HEADERS``."""
    lowered = {name.lower() for name in names}
    return sorted(name for name in lowered if "_" not in name and name not in UNSIGNED_HEADERS)


def canonical_headers(headers: Mapping[str, str], signed_headers: Sequence[str]) -> str:
    """``name:value\\n`` for each signed header; ``headers`` has lower-case keys.

    ``KeyError`` if a signed header is absent.
    """
    return "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)


def payload_hash(body: bytes, content_sha256: str | None = None) -> str:
    """Hex SHA-256 of ``body``; the empty hash for no body; else a declared
    ``X-Sdk-Content-Sha256`` value (such as ``UNSIGNED-PAYLOAD``) wins, as in the SDK."""
    if not body:
        return EMPTY_BODY_SHA256
    if content_sha256:
        return content_sha256
    return hashlib.sha256(body).hexdigest()


def _assemble(
    method: str, uri: str, query: str, headers_block: str, signed: Sequence[str], digest: str
) -> str:
    return "\n".join((method.upper(), uri, query, headers_block, ";".join(signed), digest))


def canonical_request(
    method: str,
    path: str,
    params: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> str:
    """The canonical request (see the module docstring).

    ``path`` is the raw path without the query, ``params`` the decoded query pairs,
    ``headers`` a mapping with lower-case keys holding at least ``signed_headers``.
    """
    return _assemble(
        method,
        canonical_uri(path),
        canonical_query(params),
        canonical_headers(headers, signed_headers),
        signed_headers,
        payload_hash(body, headers.get(CONTENT_SHA256_HEADER)),
    )


def string_to_sign(canonical_request: str, sdk_date: str) -> str:
    """``ALGORITHM``, the ``X-Sdk-Date`` value and the canonical request's hex SHA-256."""
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def signature(sk: str, string_to_sign: str) -> str:
    """Hex HMAC-SHA256 of the string to sign, keyed with the secret key."""
    return hmac.new(sk.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(ak: str, signed_headers: Sequence[str], signature: str) -> str:
    """The ``Authorization`` header value."""
    return (
        f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(signed_headers)}, Signature={signature}"
    )


def parse_authorization(value: str) -> tuple[str, list[str], str] | None:
    """(ak, signed header names, signature) from an ``Authorization`` value, or None."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, field = part.strip().partition("=")
        if sep:
            fields[name] = field
    try:
        ak, names, sig = fields["Access"], fields["SignedHeaders"], fields["Signature"]
    except KeyError:
        return None
    if not ak or not names or not sig:
        return None
    return ak, names.split(";"), sig


def _needs_unsigned_payload(content_type: str | None) -> bool:
    return content_type is not None and not content_type.startswith(
        ("application/json", "application/bson")
    )


def sign_headers(
    *,
    ak: str,
    sk: str,
    method: str,
    path: str,
    params: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    sdk_date: str,
) -> dict[str, str]:
    """The headers to add to a request so that it is signed.

    ``headers`` are the request's final headers (any case; ``Host`` included). Returns
    ``X-Sdk-Date``, ``Authorization`` and, for a non-JSON ``Content-Type``, the SDK's
    ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD``; all but ``Authorization`` are signed.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    added = {"X-Sdk-Date": sdk_date}
    if _needs_unsigned_payload(lowered.get("content-type")):
        added["X-Sdk-Content-Sha256"] = UNSIGNED_PAYLOAD
    lowered.update((name.lower(), value) for name, value in added.items())
    signed = signed_header_names(lowered)
    request = canonical_request(method, path, params, lowered, signed, body)
    added["Authorization"] = authorization_header(
        ak, signed, signature(sk, string_to_sign(request, sdk_date))
    )
    return added


def _utf8_reading(value: str) -> str:
    """A header value decoded as Latin-1 (how ASGI servers and httpx hand out raw bytes)
    re-read as UTF-8, which is what the SDK signed; unchanged if that is not possible."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _request_headers(request: httpx.Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.headers.raw:
        name = raw_name.decode("latin-1").lower()
        value = _utf8_reading(raw_value.decode("latin-1"))
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


class AkSkAuth(httpx.Auth):
    """Sign each request with an access key / secret key pair (``SDK-HMAC-SHA256``).

    Sets ``X-Sdk-Date`` from ``clock`` (UTC now by default) and ``X-Project-Id`` when a
    project is given, then signs the request as it will go on the wire.
    """

    requires_request_body = True

    def __init__(
        self,
        *,
        ak: str,
        sk: str,
        project_id: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not ak:
            raise ValueError("ak is required")
        if not sk:
            raise ValueError("sk is required")
        self.ak = ak
        self._sk = sk
        self.project_id = project_id
        self._clock = clock or _utc_now

    def __repr__(self) -> str:
        return f"AkSkAuth(ak={self.ak!r}, sk=<hidden>, project_id={self.project_id!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-Sdk-Date"] = format_sdk_date(self._clock())
        if self.project_id:
            request.headers["X-Project-Id"] = self.project_id
        headers = _request_headers(request)
        request.headers.update(
            sign_headers(
                ak=self.ak,
                sk=self._sk,
                method=request.method,
                path=request.url.raw_path.partition(b"?")[0].decode("ascii"),
                params=parse_query(request.url.query),
                headers=headers,
                body=request.content,
                sdk_date=headers["x-sdk-date"],
            )
        )
        yield request


class TokenAuth(httpx.Auth):
    """Authenticate with an IAM token in ``X-Auth-Token`` (plus ``X-Project-Id`` if given)."""

    def __init__(self, *, token: str, project_id: str | None = None) -> None:
        if not token:
            raise ValueError("token is required")
        self._token = token
        self.project_id = project_id

    def __repr__(self) -> str:
        return f"TokenAuth(token=<hidden>, project_id={self.project_id!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.project_id:
            request.headers["X-Project-Id"] = self.project_id
        request.headers["X-Auth-Token"] = self._token
        yield request


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def _declared_hash_holds(body: bytes, declared: str | None) -> bool:
    """False only when a body contradicts the hash its X-Sdk-Content-Sha256 declares."""
    if not body or not declared or declared == UNSIGNED_PAYLOAD:
        return True
    return _same(declared, hashlib.sha256(body).hexdigest())


def verify_signature(
    *,
    method: str,
    raw_path: str | bytes,
    query_string: bytes | str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Mapping[str, str],
    now: datetime | None = None,
    max_skew_s: int = DEFAULT_MAX_SKEW_S,
) -> str | None:
    """Check an AK/SK signature server-side, from the request as it arrived.

    ``raw_path`` and ``query_string`` are the wire forms (ASGI ``raw_path`` and
    ``query_string``), ``headers`` has lower-case keys (values decoded as Latin-1 or
    UTF-8), ``credentials`` maps access keys to secret keys. Returns None for a good
    signature, else a short reason that names no secret.
    """
    authorization = headers.get("authorization")
    if not authorization:
        return "missing Authorization"
    parsed = parse_authorization(authorization)
    if parsed is None:
        return "malformed Authorization"
    ak, signed, claimed = parsed
    sk = credentials.get(ak)
    if sk is None:
        return "unknown access key"
    sdk_date = headers.get("x-sdk-date")
    if not sdk_date:
        return "missing X-Sdk-Date"
    try:
        moment = parse_sdk_date(sdk_date.strip())
    except ValueError:
        return "malformed X-Sdk-Date"
    now = now or _utc_now()
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if abs(now - moment) > timedelta(seconds=max_skew_s):
        return "X-Sdk-Date out of range"
    wire_headers = {name.lower(): _utf8_reading(value) for name, value in headers.items()}
    missing = [name for name in signed if name not in wire_headers]
    if missing:
        return f"signed header missing: {missing[0]}"
    declared = wire_headers.get(CONTENT_SHA256_HEADER)
    if not _declared_hash_holds(body, declared):
        return "body hash mismatch"

    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path
    path = path.partition("?")[0]
    query = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
    queries = [canonical_query(parse_query(query_string))]
    if query and query != queries[0]:
        queries.append(query)  # the SDK sends its canonical query string verbatim
    uri = canonical_uri(path)
    headers_block = canonical_headers(wire_headers, signed)
    digest = payload_hash(body, declared)
    date = format_sdk_date(moment)
    for candidate in queries:
        request = _assemble(method, uri, candidate, headers_block, signed, digest)
        if _same(signature(sk, string_to_sign(request, date)), claimed):
            return None
    return "signature mismatch"
