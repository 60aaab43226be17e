"""Settings, read once from ``COC_*`` values and passed down as keyword-only objects.

Nothing below this module reads the environment. ``ClientSettings.__repr__`` hides the
secret key and the token, so a settings object can be logged or shown safely.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.coc.errors import ConfigError

DEFAULT_MAX_RPS = 50.0
#: requests in flight. Measured (250k instances on 2 cores, 6 rounds): the raw fetch is as
#: fast at 8 as at 16; the product, whose flattening thread shares the cores with the
#: simulator, hides their latency better at 16 (0.78x the raw fetch against 0.73x at 8)
DEFAULT_CONCURRENCY = 16
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_PAGE_LIMIT = 50
DEFAULT_LIST_LIMIT = 50
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_RETRY_BUDGET_S = 600.0


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    """How to reach and call the COC API."""

    endpoint: str
    ak: str | None = None
    sk: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    project_id: str | None = None
    ca_bundle: str | None = None
    #: requests per second for the whole run; ``None`` means no cap (adaptive only)
    max_rps: float | None = DEFAULT_MAX_RPS
    concurrency: int = DEFAULT_CONCURRENCY
    #: lower the rate after a 429 and creep back up (AIMD), never above ``max_rps``
    adaptive: bool = True
    timeout_s: float = DEFAULT_TIMEOUT_S
    page_limit: int = DEFAULT_PAGE_LIMIT
    list_limit: int = DEFAULT_LIST_LIMIT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_budget_s: float = DEFAULT_RETRY_BUDGET_S
    #: ``aiohttp`` (measured faster, see ``pipelines/coc/transport.py``) or ``httpx``'s own
    transport: str = "aiohttp"

    def __post_init__(self) -> None:
        check_endpoint(self.endpoint)
        if (self.ak is None) != (self.sk is None):
            raise ConfigError("COC_AK and COC_SK must be set together")
        if self.concurrency < 1:
            raise ConfigError(f"COC_CONCURRENCY must be >= 1, got {self.concurrency}")
        if self.max_rps is not None and self.max_rps <= 0:
            raise ConfigError(f"COC_MAX_RPS must be > 0, got {self.max_rps}")
        if self.transport not in ("aiohttp", "httpx"):
            raise ConfigError(f"transport must be 'aiohttp' or 'httpx', got {self.transport!r}")
        if not 1 <= self.page_limit <= 50:
            raise ConfigError(f"page limit must be within 1..50, got {self.page_limit}")

    def __repr__(self) -> str:  # says whether a secret is set, never what it is
        shown = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("sk", "token")
        }
        shown["sk"] = "<hidden>" if self.sk else None
        shown["token"] = "<hidden>" if self.token else None
        return "ClientSettings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def auth_kind(self) -> str:
        return "aksk" if self.ak else "token" if self.token else "none"


@dataclass(frozen=True, kw_only=True)
class WarehouseSettings:
    """Where the Parquet and the DuckDB file live, and the zone of the day boundaries."""

    warehouse: str
    duckdb_path: str
    timezone: str = "UTC"

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


def is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: str) -> None:
    """HTTPS anywhere, plain HTTP only to a loopback host."""
    if not endpoint:
        raise ConfigError("COC_ENDPOINT is required (the base URL of the COC API)")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"COC_ENDPOINT must be an http(s) URL, got {endpoint!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"COC_ENDPOINT {endpoint!r} uses plain http:// to a non-loopback host; "
            "use https:// (credentials must never cross a network in clear text)"
        )


def _float(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() in ("none", "unlimited", "0"):
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


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
    return ClientSettings(
        endpoint=endpoint,
        ak=_opt(env, "COC_AK"),
        sk=_opt(env, "COC_SK"),
        token=_opt(env, "COC_TOKEN"),
        project_id=_opt(env, "COC_PROJECT_ID"),
        ca_bundle=_opt(env, "COC_CA_BUNDLE"),
        max_rps=_float(env, "COC_MAX_RPS", DEFAULT_MAX_RPS),
        concurrency=_int(env, "COC_CONCURRENCY", DEFAULT_CONCURRENCY),
    )


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
        timezone=_opt(env, "COC_TIMEZONE") or "UTC",
    )
