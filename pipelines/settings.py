"""Settings, read once from ``COC_*`` values and passed down as keyword-only objects.

Nothing below this module reads the environment. The client's own settings type lives with
the client (``pipelines/coc/settings.py``); this module builds it from the variables.
"""

from __future__ import annotations

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
)
from pipelines.daylock import DEFAULT_LOCK_TIMEOUT_S


@dataclass(frozen=True, kw_only=True)
class WarehouseSettings:
    """Where the Parquet and the DuckDB file live, and the zone of the day boundaries."""

    warehouse: str
    duckdb_path: str
    timezone: str = "UTC"
    #: how long a run waits for another run of the same day (``COC_DAY_LOCK_TIMEOUT_S``)
    day_lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    #: Redis shared by every run of a deployment: day locks and the build lock every machine
    #: sees (``pipelines/shared_lock.py``); ``None`` = this machine's locks only
    redis_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        zone(self.timezone)

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


def warehouse_settings_from_env(env: Mapping[str, str]) -> WarehouseSettings:
    warehouse = _opt(env, "COC_WAREHOUSE")
    if warehouse is None:
        raise ConfigError("COC_WAREHOUSE is not set: a local folder or an s3:// URI")
    return WarehouseSettings(
        warehouse=warehouse,
        duckdb_path=_opt(env, "COC_DUCKDB") or default_duckdb_path(warehouse),
        timezone=timezone_from_env(env),
        day_lock_timeout_s=_seconds(
            env, "COC_DAY_LOCK_TIMEOUT_S", DEFAULT_LOCK_TIMEOUT_S, 0.0, MAX_DAY_LOCK_TIMEOUT_S
        ),
        redis_url=_opt(env, "COC_REDIS_URL"),
    )
