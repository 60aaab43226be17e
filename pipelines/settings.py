"""Settings, read once from ``COC_*`` values and passed down as keyword-only objects.

Nothing below this module reads the environment. The client's own settings type lives with
the client (``pipelines/coc/settings.py``); this module builds it from the variables.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.coc.errors import ConfigError
from pipelines.coc.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RPS,
    DEFAULT_RETRY_BUDGET_S,
    ClientSettings,
    is_loopback_host,
)
from pipelines.daylock import DEFAULT_LOCK_TIMEOUT_S

#: how long a data file that a commit superseded stays before the vacuum may remove it: longer
#: than any reader of a replaced ``coc.duckdb`` lives, and the reach of ``report --as-of``
DEFAULT_VACUUM_RETENTION_H = 168.0
MIN_VACUUM_RETENTION_H, MAX_VACUUM_RETENTION_H = 1.0, 24 * 366.0
#: the share of a published day's instances a run may drop before it is refused
DEFAULT_MAX_SHRINK = 0.5
URL_STYLES = ("path", "vhost")
CONDITIONAL_PUT = ("etag", "none")


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
    #: sees (``pipelines/shared_lock.py``); ``None`` = this machine's locks only
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

    def __post_init__(self) -> None:
        zone(self.timezone)
        if self.archive_retention_days is not None and self.archive_retention_days < 1:
            raise ConfigError(
                f"COC_ARCHIVE_RETENTION_DAYS must be >= 1, got {self.archive_retention_days}"
            )
        if self.warehouse.startswith("s3://") and self.object_store is None:
            object.__setattr__(self, "object_store", ObjectStoreSettings())

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"COC_TIMEZONE={name!r} is not a known IANA time zone") from exc


#: Bounds of the numeric settings, checked when they are read (the README lists them).
#: Above ``MAX_CONCURRENCY`` requests in flight only cost memory: the gate paces them anyway.
MAX_CONCURRENCY = 256
#: ``COC_MAX_RPS`` below 1 request/s would stretch a day over hours; above, no API allows it
MIN_MAX_RPS, MAX_MAX_RPS = 1.0, 10_000.0
MAX_ATTEMPTS_LIMIT = 100
MIN_RETRY_BUDGET_S, MAX_RETRY_BUDGET_S = 1.0, 86_400.0
DEFAULT_LOOKBACK_DAYS = 3
MAX_LOOKBACK_DAYS = 90
MAX_DAY_LOCK_TIMEOUT_S = 86_400.0
#: ``COC_ARCHIVE_RETENTION_DAYS``: unset or ``0`` keeps every day's raw archive
MAX_ARCHIVE_RETENTION_DAYS = 36_500
#: the first day a run may ask for (the daily partitions start here too)
FIRST_DAY = date(2024, 1, 1)


def _number(
    env: Mapping[str, str],
    name: str,
    kind: type[int] | type[float],
    low: float,
    high: float,
    unit: str = "",
) -> float | None:
    """The value of ``name`` within ``[low, high]``, None when unset; else a ConfigError."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    what = "an integer" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"{name} must be within {low:g}..{high:g}{unit}, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _number(env, name, int, low, high)
    return default if value is None else int(value)


def _seconds(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    value = _number(env, name, float, low, high, " seconds")
    return default if value is None else float(value)


def _max_rps(env: Mapping[str, str]) -> float | None:
    """``COC_MAX_RPS``: ``0``, ``none`` or ``unlimited`` mean no cap (adaptive only)."""
    raw = env.get("COC_MAX_RPS", "").strip()
    if raw.lower() in ("none", "unlimited") or raw in ("0", "0.0"):
        return None
    value = _number(env, "COC_MAX_RPS", float, MIN_MAX_RPS, MAX_MAX_RPS, " requests/s (0 = no cap)")
    return DEFAULT_MAX_RPS if value is None else float(value)


def _opt(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def client_settings_from_env(env: Mapping[str, str]) -> ClientSettings:
    """``ClientSettings`` from the contract's variables (``COC_ENDPOINT`` required)."""
    endpoint = _opt(env, "COC_ENDPOINT")
    if endpoint is None:
        raise ConfigError(
            "COC_ENDPOINT is not set: point it at the COC API (or at a simulator started "
            "with `coc-etl simulator`); it is never replaced by the simulator silently"
        )
    check_no_credentials_in_url(endpoint)
    ak, sk, token = _opt(env, "COC_AK"), _opt(env, "COC_SK"), _opt(env, "COC_TOKEN")
    if (ak or sk) and token:
        raise ConfigError("set either COC_AK and COC_SK or COC_TOKEN, not both")
    return ClientSettings(
        endpoint=endpoint,
        ak=ak,
        sk=sk,
        token=token,
        project_id=_opt(env, "COC_PROJECT_ID"),
        ca_bundle=_opt(env, "COC_CA_BUNDLE"),
        max_rps=_max_rps(env),
        concurrency=_int(env, "COC_CONCURRENCY", DEFAULT_CONCURRENCY, 1, MAX_CONCURRENCY),
        max_attempts=_int(env, "COC_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, 1, MAX_ATTEMPTS_LIMIT),
        retry_budget_s=_seconds(
            env,
            "COC_RETRY_BUDGET_S",
            DEFAULT_RETRY_BUDGET_S,
            MIN_RETRY_BUDGET_S,
            MAX_RETRY_BUDGET_S,
        ),
        redis_url=_opt(env, "COC_REDIS_URL"),
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
    return _int(env, "COC_LOOKBACK_DAYS", DEFAULT_LOOKBACK_DAYS, 0, MAX_LOOKBACK_DAYS)


def timezone_from_env(env: Mapping[str, str]) -> str:
    """``COC_TIMEZONE``, checked to be a known IANA zone (default ``UTC``)."""
    name = _opt(env, "COC_TIMEZONE") or "UTC"
    zone(name)
    return name


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
    style = _opt(env, "COC_S3_URL_STYLE")
    put = (_opt(env, "COC_S3_CONDITIONAL_PUT") or "etag").lower()
    if put not in CONDITIONAL_PUT:
        raise ConfigError(f"COC_S3_CONDITIONAL_PUT must be etag or none, got {put!r}")
    return ObjectStoreSettings(
        access_key_id=_opt(env, "AWS_ACCESS_KEY_ID"),
        secret_access_key=_opt(env, "AWS_SECRET_ACCESS_KEY"),
        session_token=_opt(env, "AWS_SESSION_TOKEN"),
        region=_opt(env, "AWS_REGION") or _opt(env, "AWS_DEFAULT_REGION"),
        endpoint_url=_opt(env, "AWS_ENDPOINT_URL"),
        url_style=style.lower() if style else None,
        conditional_put=put == "etag",
        connect_timeout_s=_seconds(env, "COC_S3_CONNECT_TIMEOUT_S", 10.0, 0.5, 600.0),
        request_timeout_s=_seconds(env, "COC_S3_TIMEOUT_S", 60.0, 0.5, 3600.0),
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no variable: ``1``, ``true``, ``yes`` or ``on`` (any case) is yes; unset is no."""
    raw = (_opt(env, name) or "0").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true/false, yes/no), got {raw!r}")


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
    warehouse = _opt(env, "COC_WAREHOUSE")
    if warehouse is None:
        raise ConfigError("COC_WAREHOUSE is not set: a local folder or an s3:// URI")
    check_warehouse_uri(warehouse)
    duckdb_path = _opt(env, "COC_DUCKDB") or default_duckdb_path(warehouse)
    if "://" in duckdb_path:
        raise ConfigError(f"COC_DUCKDB={duckdb_path!r} must be a local file path")
    return WarehouseSettings(
        warehouse=warehouse,
        duckdb_path=duckdb_path,
        timezone=timezone_from_env(env),
        day_lock_timeout_s=_seconds(
            env, "COC_DAY_LOCK_TIMEOUT_S", DEFAULT_LOCK_TIMEOUT_S, 0.0, MAX_DAY_LOCK_TIMEOUT_S
        ),
        redis_url=_opt(env, "COC_REDIS_URL"),
        object_store=object_store_settings_from_env(env) if "://" in warehouse else None,
        vacuum_retention_h=_or(
            _number(
                env,
                "COC_VACUUM_RETENTION_HOURS",
                float,
                MIN_VACUUM_RETENTION_H,
                MAX_VACUUM_RETENTION_H,
                " hours",
            ),
            DEFAULT_VACUUM_RETENTION_H,
        ),
        max_shrink=_or(_number(env, "COC_MAX_SHRINK", float, 0.0, 1.0), DEFAULT_MAX_SHRINK),
        allow_shrink=flag(env, "COC_ALLOW_SHRINK"),
        archive_retention_days=archive_retention_from_env(env),
    )


def archive_retention_from_env(env: Mapping[str, str]) -> int | None:
    """``COC_ARCHIVE_RETENTION_DAYS``: days of raw archive kept; unset or 0 keeps them all."""
    days = _int(env, "COC_ARCHIVE_RETENTION_DAYS", 0, 0, MAX_ARCHIVE_RETENTION_DAYS)
    return days or None
