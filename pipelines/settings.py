"""Settings objects, built from the declared variables (``pipelines/variables.py``).

Keyword-only value objects passed down; nothing below this module reads the environment. The
client's own settings type lives with the client (``pipelines/coc/settings.py``); this module
builds it. Each ``*_from_env`` takes a mapping (the CLI hands ``process_env()``); the Dagster
resources hand their typed fields to ``client_settings`` and ``warehouse_settings``: one
declaration checks both.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pipelines.coc.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RPS,
    DEFAULT_RETRY_BUDGET_S,
    ClientSettings,
    is_loopback_host,
)
from pipelines.errors import ConfigError
from pipelines.locks.day import DEFAULT_LOCK_TIMEOUT_S
from pipelines.variables import (
    BY_NAME,
    CLIENT_VARIABLES,
    CONDITIONAL_PUT,
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_MAX_SHRINK,
    DEFAULT_VACUUM_RETENTION_H,
    FIRST_DAY,
    MAX_ARCHIVE_RETENTION_DAYS,
    MAX_ATTEMPTS_LIMIT,
    MAX_CONCURRENCY,
    MAX_DAY_LOCK_TIMEOUT_S,
    MAX_LOOKBACK_DAYS,
    MAX_MAX_RPS,
    MAX_RETRY_BUDGET_S,
    MAX_VACUUM_RETENTION_H,
    MIN_MAX_RPS,
    MIN_RETRY_BUDGET_S,
    MIN_VACUUM_RETENTION_H,
    OBJECT_STORE_VARIABLES,
    URL_STYLES,
    WAREHOUSE_VARIABLES,
    Value,
    accept_all,
    read_all,
    zone,
)

__all__ = [
    "CONDITIONAL_PUT",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_LOCK_TIMEOUT_S",
    "DEFAULT_LOOKBACK_DAYS",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_RPS",
    "DEFAULT_MAX_SHRINK",
    "DEFAULT_RETRY_BUDGET_S",
    "DEFAULT_VACUUM_RETENTION_H",
    "FIRST_DAY",
    "MAX_ARCHIVE_RETENTION_DAYS",
    "MAX_ATTEMPTS_LIMIT",
    "MAX_CONCURRENCY",
    "MAX_DAY_LOCK_TIMEOUT_S",
    "MAX_LOOKBACK_DAYS",
    "MAX_MAX_RPS",
    "MAX_RETRY_BUDGET_S",
    "MAX_VACUUM_RETENTION_H",
    "MIN_MAX_RPS",
    "MIN_RETRY_BUDGET_S",
    "MIN_VACUUM_RETENTION_H",
    "URL_STYLES",
    "ClientSettings",
    "ObjectStoreSettings",
    "WarehouseSettings",
    "zone",
]


@dataclass(frozen=True, kw_only=True)
class ObjectStoreSettings:
    """How to reach an ``s3://`` warehouse (Huawei OBS or any S3-compatible service).

    From the standard ``AWS_*`` variables; a key left unset means the SDK's own chain
    (instance profile, ``~/.aws``). ``url_style`` None: path-style addressing for an endpoint
    whose host is an IP address or ``localhost``, virtual-hosted otherwise.
    """

    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None
    endpoint_url: str | None = None
    url_style: str | None = None
    #: whether the store refuses a PUT over an existing object (``If-None-Match``; AWS S3,
    #: MinIO, moto): then it serialises Delta commits itself; else the product's lock does
    conditional_put: bool = True
    #: seconds to wait for a connection, and for each answer, before a retry
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
        if self.url_style is not None and self.url_style not in URL_STYLES:
            raise ConfigError(f"COC_S3_URL_STYLE must be path or vhost, got {self.url_style!r}")
        if self.endpoint_url is not None:
            if "@" in self.endpoint_url:  # before any message quotes it
                raise ConfigError("AWS_ENDPOINT_URL must not carry credentials (no user@)")
            parts = urlsplit(self.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"AWS_ENDPOINT_URL must be an http(s) URL, got {self.endpoint_url!r}"
                )
            if parts.scheme == "http" and not is_loopback_host(parts.hostname):
                raise ConfigError(
                    f"AWS_ENDPOINT_URL {self.endpoint_url!r} uses plain http:// to a "
                    "non-loopback host; use https:// (credentials and data must never cross "
                    "a network in clear text)"
                )

    def __repr__(self) -> str:  # says whether a secret is set, never what it is
        shown = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("secret_access_key", "session_token")
        }
        shown["secret_access_key"] = "<hidden>" if self.secret_access_key else None
        shown["session_token"] = "<hidden>" if self.session_token else None
        return "ObjectStoreSettings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def virtual_hosted(self) -> bool:
        """Whether buckets are addressed as ``bucket.host`` (else ``host/bucket``)."""
        if self.url_style is not None:
            return self.url_style == "vhost"
        if self.endpoint_url is None:
            return True  # AWS itself
        host = urlsplit(self.endpoint_url).hostname or ""
        if host.lower() == "localhost":
            return False
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return True
        return False


@dataclass(frozen=True, kw_only=True)
class WarehouseSettings:
    """Where the Parquet and the DuckDB file live, and the zone of the day boundaries.

    ``object_store`` is set when ``warehouse`` is an ``s3://`` URI.
    """

    warehouse: str
    duckdb_path: str
    timezone: str = "UTC"
    #: how long a run waits for another run of the same day (``COC_DAY_LOCK_TIMEOUT_S``)
    day_lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    #: Redis shared by every run of a deployment: day locks and the build lock every machine
    #: sees (``pipelines/locks/shared.py``); ``None`` = this machine's locks only
    redis_url: str | None = field(default=None, repr=False)
    object_store: ObjectStoreSettings | None = None
    #: hours a superseded data file stays before the vacuum (``COC_VACUUM_RETENTION_HOURS``)
    vacuum_retention_h: float = DEFAULT_VACUUM_RETENTION_H
    #: the share of a day's published instances a run may drop (``COC_MAX_SHRINK``)
    max_shrink: float = DEFAULT_MAX_SHRINK
    #: publish a day however much it shrinks (``COC_ALLOW_SHRINK``)
    allow_shrink: bool = False
    #: days of raw archive kept (``COC_ARCHIVE_RETENTION_DAYS``), counted back from today in
    #: ``timezone``; older days' archives are deleted after each ingested day; ``None``: all
    archive_retention_days: int | None = None
    #: ``timezone`` parsed, once (``zone``)
    tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tz", zone(self.timezone))
        if self.archive_retention_days is not None and self.archive_retention_days < 1:
            raise ConfigError(
                f"COC_ARCHIVE_RETENTION_DAYS must be >= 1, got {self.archive_retention_days}"
            )
        if self.warehouse.startswith("s3://") and self.object_store is None:
            object.__setattr__(self, "object_store", ObjectStoreSettings())


def _text(values: Mapping[str, Value], key: str) -> str | None:
    value = values.get(key)
    return None if value is None else str(value)


def _float(values: Mapping[str, Value], key: str) -> float | None:
    value = values.get(key)
    return None if value is None else float(value)


def _or(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def _int(values: Mapping[str, Value], key: str) -> int | None:
    value = values.get(key)
    return None if value is None else int(value)


def client_settings_from_env(env: Mapping[str, str]) -> ClientSettings:
    """``ClientSettings`` from the contract's variables (``COC_ENDPOINT`` required)."""
    return client_settings(read_all(CLIENT_VARIABLES, env))


def client_settings(values: Mapping[str, Value]) -> ClientSettings:
    """``ClientSettings`` from checked values by field name (``read_all`` or ``accept_all``)."""
    endpoint = _text(values, "endpoint")
    if endpoint is None:
        raise ConfigError(
            "COC_ENDPOINT is not set: point it at the COC API (or at a simulator started "
            "with `coc-etl simulator`); it is never replaced by the simulator silently"
        )
    check_no_credentials_in_url(endpoint)
    ak, sk, token = _text(values, "ak"), _text(values, "sk"), _text(values, "token")
    if (ak or sk) and token:
        raise ConfigError("set either COC_AK and COC_SK or COC_TOKEN, not both")
    return ClientSettings(
        endpoint=endpoint,
        ak=ak,
        sk=sk,
        token=token,
        project_id=_text(values, "project_id"),
        ca_bundle=_text(values, "ca_bundle"),
        max_rps=_float(values, "max_rps"),
        concurrency=_int(values, "concurrency") or DEFAULT_CONCURRENCY,
        max_attempts=_int(values, "max_attempts") or DEFAULT_MAX_ATTEMPTS,
        retry_budget_s=_float(values, "retry_budget_s") or DEFAULT_RETRY_BUDGET_S,
        redis_url=_text(values, "redis_url"),
    )


def check_no_credentials_in_url(endpoint: str) -> None:
    """A user or password inside ``COC_ENDPOINT`` would reach logs and metadata: refuse it.

    The message does not repeat the URL (it holds the credential)."""
    try:
        parts = urlsplit(endpoint)
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError:
        has_credentials = "@" in endpoint
    if has_credentials:
        raise ConfigError(
            "COC_ENDPOINT must not contain a user or password (user:pass@host); "
            "use COC_AK/COC_SK or COC_TOKEN"
        )


def lookback_days_from_env(env: Mapping[str, str]) -> int:
    """``COC_LOOKBACK_DAYS``: days before yesterday the nightly run reads again."""
    return int(BY_NAME["COC_LOOKBACK_DAYS"].read(env) or 0)


def timezone_from_env(env: Mapping[str, str]) -> str:
    """``COC_TIMEZONE``, checked to be a known IANA zone (default ``UTC``)."""
    return str(BY_NAME["COC_TIMEZONE"].read(env))


def check_day_range(
    first: date, last: date, *, tz: ZoneInfo, today: date | None = None, argument: str = "day"
) -> None:
    """Days a run may ask for: from ``FIRST_DAY`` to today in ``tz``, in order."""
    today = today or datetime.now(tz).date()
    if first < FIRST_DAY:
        raise ConfigError(f"{argument} {first} is before {FIRST_DAY}, the first day there is")
    if last > today:
        raise ConfigError(
            f"{'--to' if last != first else argument} {last} is in the future "
            f"(today is {today} in {tz.key})"
        )
    if last < first:
        raise ConfigError(f"--to {last} is before the first day {first}")


def default_duckdb_path(warehouse: str) -> str:
    if "://" in warehouse:
        raise ConfigError(
            "COC_DUCKDB is required when COC_WAREHOUSE is object storage "
            f"({warehouse.split('://', 1)[0]}://)"
        )
    return warehouse.rstrip("/") + "/coc.duckdb"


def object_store_settings_from_env(env: Mapping[str, str]) -> ObjectStoreSettings:
    """``ObjectStoreSettings`` from ``AWS_*``, ``COC_S3_URL_STYLE``, ``COC_S3_CONDITIONAL_PUT``."""
    return object_store_settings(read_all(OBJECT_STORE_VARIABLES, env))


def object_store_settings(values: Mapping[str, Value]) -> ObjectStoreSettings:
    """``ObjectStoreSettings`` from checked values by field name."""
    return ObjectStoreSettings(
        access_key_id=_text(values, "aws_access_key_id"),
        secret_access_key=_text(values, "aws_secret_access_key"),
        session_token=_text(values, "aws_session_token"),
        region=_text(values, "aws_region"),
        endpoint_url=_text(values, "aws_endpoint_url"),
        url_style=_text(values, "s3_url_style"),
        conditional_put=values.get("s3_conditional_put") != "none",
        connect_timeout_s=float(_float(values, "s3_connect_timeout_s") or 10.0),
        request_timeout_s=float(_float(values, "s3_timeout_s") or 60.0),
    )


def check_warehouse_uri(warehouse: str) -> None:
    """A local folder or ``s3://bucket[/prefix]``; any other scheme is refused by name."""
    if "://" not in warehouse:
        return
    scheme, rest = warehouse.split("://", 1)
    if scheme != "s3":
        raise ConfigError(
            f"COC_WAREHOUSE={warehouse!r}: only local folders and s3:// URIs are supported"
        )
    bucket = rest.split("/", 1)[0]
    if not bucket or any(c in rest for c in "*?[]{}"):
        raise ConfigError(
            f"COC_WAREHOUSE={warehouse!r} must be s3://bucket[/prefix] without glob characters"
        )
    # an object key is not a path: "a//b" and ".." name other objects than they seem to
    segments = rest.rstrip("/").split("/")
    odd = [s for s in segments[1:] if s in ("", ".", "..")]
    if odd or segments[0] in (".", ".."):
        what = "an empty segment (//)" if "" in odd else f"a {odd[0] if odd else '..'!r} segment"
        raise ConfigError(
            f"COC_WAREHOUSE={warehouse!r} has {what}: write the prefix as "
            "s3://bucket/a/b, each part a name"
        )


def warehouse_settings_from_env(env: Mapping[str, str]) -> WarehouseSettings:
    """``WarehouseSettings`` from the variables; ``AWS_*`` are read for an ``s3://`` one only."""
    names = [n for n in WAREHOUSE_VARIABLES if n not in OBJECT_STORE_VARIABLES]
    warehouse = BY_NAME["COC_WAREHOUSE"].read(env)
    s3 = isinstance(warehouse, str) and "://" in warehouse
    return warehouse_settings(
        read_all(names, env) | (read_all(OBJECT_STORE_VARIABLES, env) if s3 else {})
    )


def warehouse_settings(values: Mapping[str, Value]) -> WarehouseSettings:
    """``WarehouseSettings`` from checked values by field name (the object store's among them
    when the warehouse is ``s3://``)."""
    warehouse = _text(values, "warehouse")
    if warehouse is None:
        raise ConfigError("COC_WAREHOUSE is not set: a local folder or an s3:// URI")
    check_warehouse_uri(warehouse)
    duckdb_path = _text(values, "duckdb") or default_duckdb_path(warehouse)
    if "://" in duckdb_path:
        raise ConfigError(f"COC_DUCKDB={duckdb_path!r} must be a local file path")
    return WarehouseSettings(
        warehouse=warehouse,
        duckdb_path=duckdb_path,
        timezone=_text(values, "timezone") or "UTC",
        day_lock_timeout_s=_or(_float(values, "day_lock_timeout_s"), DEFAULT_LOCK_TIMEOUT_S),
        redis_url=_text(values, "redis_url"),
        object_store=object_store_settings(values) if "://" in warehouse else None,
        vacuum_retention_h=_or(
            _float(values, "vacuum_retention_hours"), DEFAULT_VACUUM_RETENTION_H
        ),
        max_shrink=_or(_float(values, "max_shrink"), DEFAULT_MAX_SHRINK),
        allow_shrink=bool(values.get("allow_shrink")),
        archive_retention_days=_int(values, "archive_retention_days"),
    )


def warehouse_settings_from_fields(given: Mapping[str, Value]) -> WarehouseSettings:
    """``WarehouseSettings`` from typed values by field name (a Dagster resource's fields),
    each checked by its declaration as if read from the environment."""
    names = [n for n in WAREHOUSE_VARIABLES if n not in OBJECT_STORE_VARIABLES]
    values = accept_all(names, given)
    if "://" in str(values.get("warehouse") or ""):
        values |= accept_all(OBJECT_STORE_VARIABLES, given)
    return warehouse_settings(values)


def client_settings_from_fields(given: Mapping[str, Value]) -> ClientSettings:
    """``ClientSettings`` from typed values by field name (a Dagster resource's fields)."""
    return client_settings(accept_all(CLIENT_VARIABLES, given))


def archive_retention_from_env(env: Mapping[str, str]) -> int | None:
    """``COC_ARCHIVE_RETENTION_DAYS``: days of raw archive kept; unset or 0 keeps them all."""
    return _int({"days": BY_NAME["COC_ARCHIVE_RETENTION_DAYS"].read(env)}, "days")
