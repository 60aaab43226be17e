"""Dagster resources: configuration in, plain settings objects out.

Each field is filled by ``EnvVar`` in ``pipelines/definitions.py`` and resolved at run time,
so secrets are never read at import, never shown in the UI and never written to run config.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from pipelines.settings import (
    ClientSettings,
    WarehouseSettings,
    client_settings_from_env,
    warehouse_settings_from_env,
)


class CocApiResource(ConfigurableResource):
    """Where the COC API is and how to call it."""

    endpoint: str | None = Field(default=None, description="COC_ENDPOINT: base URL of the API")
    ak: str | None = Field(default=None, description="COC_AK")
    sk: str | None = Field(default=None, description="COC_SK (secret)")
    token: str | None = Field(default=None, description="COC_TOKEN (secret)")
    project_id: str | None = Field(default=None, description="COC_PROJECT_ID")
    ca_bundle: str | None = Field(default=None, description="COC_CA_BUNDLE")
    max_rps: str | None = Field(default=None, description="COC_MAX_RPS (0 = no cap)")
    concurrency: str | None = Field(default=None, description="COC_CONCURRENCY")
    max_attempts: str | None = Field(default=None, description="COC_MAX_ATTEMPTS")
    retry_budget_s: str | None = Field(default=None, description="COC_RETRY_BUDGET_S")
    redis_url: str | None = Field(
        default=None, description="COC_REDIS_URL: the rate budget shared by every run"
    )

    def client_settings(self) -> ClientSettings:
        values = {
            "COC_ENDPOINT": self.endpoint,
            "COC_AK": self.ak,
            "COC_SK": self.sk,
            "COC_TOKEN": self.token,
            "COC_PROJECT_ID": self.project_id,
            "COC_CA_BUNDLE": self.ca_bundle,
            "COC_MAX_RPS": self.max_rps,
            "COC_CONCURRENCY": self.concurrency,
            "COC_MAX_ATTEMPTS": self.max_attempts,
            "COC_RETRY_BUDGET_S": self.retry_budget_s,
            "COC_REDIS_URL": self.redis_url,
        }
        return client_settings_from_env({k: v for k, v in values.items() if v is not None})


class WarehouseResource(ConfigurableResource):
    """Where the Parquet and the DuckDB file go, and the zone of the day boundaries."""

    warehouse: str | None = Field(
        default=None, description="COC_WAREHOUSE: a local folder or an s3:// URI"
    )
    duckdb: str | None = Field(default=None, description="COC_DUCKDB")
    timezone: str = Field(default="UTC", description="COC_TIMEZONE")
    day_lock_timeout_s: str | None = Field(default=None, description="COC_DAY_LOCK_TIMEOUT_S")
    redis_url: str | None = Field(
        default=None, description="COC_REDIS_URL: day and build locks every machine sees"
    )
    aws_access_key_id: str | None = Field(default=None, description="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: str | None = Field(
        default=None, description="AWS_SECRET_ACCESS_KEY (secret)"
    )
    aws_session_token: str | None = Field(default=None, description="AWS_SESSION_TOKEN (secret)")
    aws_region: str | None = Field(default=None, description="AWS_REGION")
    aws_endpoint_url: str | None = Field(default=None, description="AWS_ENDPOINT_URL")
    s3_url_style: str | None = Field(default=None, description="COC_S3_URL_STYLE: path|vhost")
    s3_conditional_put: str | None = Field(
        default=None, description="COC_S3_CONDITIONAL_PUT: etag|none"
    )
    s3_timeout_s: str | None = Field(default=None, description="COC_S3_TIMEOUT_S")
    s3_connect_timeout_s: str | None = Field(default=None, description="COC_S3_CONNECT_TIMEOUT_S")
    vacuum_retention_hours: str | None = Field(
        default=None, description="COC_VACUUM_RETENTION_HOURS"
    )
    max_shrink: str | None = Field(default=None, description="COC_MAX_SHRINK: a share, 0..1")
    allow_shrink: str | None = Field(
        default=None, description="COC_ALLOW_SHRINK: 1 publishes a day however much it shrinks"
    )
    archive_retention_days: str | None = Field(
        default=None, description="COC_ARCHIVE_RETENTION_DAYS: days of raw archive kept"
    )

    def settings(self) -> WarehouseSettings:
        values = {
            "COC_WAREHOUSE": self.warehouse,
            "COC_DUCKDB": self.duckdb,
            "COC_TIMEZONE": self.timezone,
            "COC_DAY_LOCK_TIMEOUT_S": self.day_lock_timeout_s,
            "COC_REDIS_URL": self.redis_url,
            "AWS_ACCESS_KEY_ID": self.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.aws_secret_access_key,
            "AWS_SESSION_TOKEN": self.aws_session_token,
            "AWS_REGION": self.aws_region,
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "COC_S3_URL_STYLE": self.s3_url_style,
            "COC_S3_CONDITIONAL_PUT": self.s3_conditional_put,
            "COC_S3_TIMEOUT_S": self.s3_timeout_s,
            "COC_S3_CONNECT_TIMEOUT_S": self.s3_connect_timeout_s,
            "COC_VACUUM_RETENTION_HOURS": self.vacuum_retention_hours,
            "COC_MAX_SHRINK": self.max_shrink,
            "COC_ALLOW_SHRINK": self.allow_shrink,
            "COC_ARCHIVE_RETENTION_DAYS": self.archive_retention_days,
        }
        return warehouse_settings_from_env({k: v for k, v in values.items() if v})
