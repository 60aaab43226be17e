"""Settings, read once from ``COC_*`` values and passed down as keyword-only objects.

Nothing below this module reads the environment. The client's own settings type lives with
the client (``pipelines/coc/settings.py``); this module builds it from the variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.coc.errors import ConfigError
from pipelines.coc.settings import DEFAULT_CONCURRENCY, DEFAULT_MAX_RPS, ClientSettings


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
