"""Dagster resources: typed fields from the declared variables, plain settings objects out.

Each field is one variable of ``pipelines/variables.py``, typed as declared (``str``, ``int``,
``float``, ``bool``), described by its help line. ``from_env`` fills them: a text variable
(every secret is one) as an ``EnvVar``, resolved at run time, so secrets are never read at
import, never shown in the UI and never written to run config; a number or a flag as its
value, parsed and checked when the code location loads (Dagster 1.13 resolves an ``EnvVar``
into text or an integer only, never a float or a flag). ``client_settings()`` and
``settings()`` hand the fields, checked by the same declarations as the CLI's, straight to
the settings builders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from pipelines.settings import (
    ClientSettings,
    WarehouseSettings,
    client_settings_from_fields,
    warehouse_settings_from_fields,
)
from pipelines.variables import BY_NAME, CLIENT_VARIABLES, WAREHOUSE_VARIABLES, Value


def described(name: str) -> Any:
    """A field of variable ``name``: unset by default, its help as the description."""
    return Field(default=None, description=f"{name}: {BY_NAME[name].describe()}")


def fields_from_env(names: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    """The fields of the variables that are set in ``env`` (unset ones keep their default):
    text as an ``EnvVar`` (its fallback's when only that is set), numbers and flags parsed."""
    fields: dict[str, Any] = {}
    for name in names:
        variable = BY_NAME[name]
        source = name if variable.is_set(env) else variable.fallback
        if source is None or not (env.get(source) or "").strip():
            continue
        if variable.kind is str:
            fields[variable.field] = EnvVar(source)
        else:
            value = variable.read(env)
            # "no cap" / "keep every day" is a zero in a typed field, as in the variable
            fields[variable.field] = 0 if value is None else value
    return fields


def _given(resource: ConfigurableResource, names: Sequence[str]) -> dict[str, Value]:
    return {BY_NAME[n].field: getattr(resource, BY_NAME[n].field) for n in names}


class CocApiResource(ConfigurableResource):
    """Where the COC API is and how to call it."""

    endpoint: str | None = described("COC_ENDPOINT")
    ak: str | None = described("COC_AK")
    sk: str | None = described("COC_SK")
    token: str | None = described("COC_TOKEN")
    project_id: str | None = described("COC_PROJECT_ID")
    ca_bundle: str | None = described("COC_CA_BUNDLE")
    max_rps: float | None = described("COC_MAX_RPS")
    concurrency: int | None = described("COC_CONCURRENCY")
    max_attempts: int | None = described("COC_MAX_ATTEMPTS")
    retry_budget_s: float | None = described("COC_RETRY_BUDGET_S")
    redis_url: str | None = described("COC_REDIS_URL")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        return cls(**fields_from_env(CLIENT_VARIABLES, env))

    def client_settings(self) -> ClientSettings:
        return client_settings_from_fields(_given(self, CLIENT_VARIABLES))


class WarehouseResource(ConfigurableResource):
    """Where the Parquet and the DuckDB file go, and the zone of the day boundaries."""

    warehouse: str | None = described("COC_WAREHOUSE")
    duckdb: str | None = described("COC_DUCKDB")
    timezone: str | None = described("COC_TIMEZONE")
    day_lock_timeout_s: float | None = described("COC_DAY_LOCK_TIMEOUT_S")
    redis_url: str | None = described("COC_REDIS_URL")
    vacuum_retention_hours: float | None = described("COC_VACUUM_RETENTION_HOURS")
    max_shrink: float | None = described("COC_MAX_SHRINK")
    allow_shrink: bool | None = described("COC_ALLOW_SHRINK")
    archive_retention_days: int | None = described("COC_ARCHIVE_RETENTION_DAYS")
    aws_access_key_id: str | None = described("AWS_ACCESS_KEY_ID")
    aws_secret_access_key: str | None = described("AWS_SECRET_ACCESS_KEY")
    aws_session_token: str | None = described("AWS_SESSION_TOKEN")
    aws_region: str | None = described("AWS_REGION")
    aws_endpoint_url: str | None = described("AWS_ENDPOINT_URL")
    s3_url_style: str | None = described("COC_S3_URL_STYLE")
    s3_conditional_put: str | None = described("COC_S3_CONDITIONAL_PUT")
    s3_connect_timeout_s: float | None = described("COC_S3_CONNECT_TIMEOUT_S")
    s3_timeout_s: float | None = described("COC_S3_TIMEOUT_S")

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, timezone: str | None = None) -> Self:
        """``timezone``: the zone the code location parsed already (a value, not an
        ``EnvVar``: it shapes the partitions too)."""
        fields = fields_from_env(WAREHOUSE_VARIABLES, env)
        if timezone is not None:
            fields["timezone"] = timezone
        return cls(**fields)

    def settings(self) -> WarehouseSettings:
        return warehouse_settings_from_fields(_given(self, WAREHOUSE_VARIABLES))
