"""``defs``: the Dagster wiring, and nothing else.

The partition time zone, the days per backfill run and the executor are read when the code
location loads (they shape the definitions); every other setting is an ``EnvVar`` resolved
at run time, so secrets never pass through this module, the UI or run config.

Executor: the steps of a run (the day's ingestion, then the warehouse) run in the run's own
process by default (``COC_EXECUTOR=in_process``): on one machine a new Python process per
step costs more than the warehouse step itself. ``COC_EXECUTOR=multiprocess`` gives
Dagster's process per step on a single machine that wants it; not under a Celery worker
(deploy/), whose pool process may not fork step processes of its own.
"""

from __future__ import annotations

import os

from dagster import (
    Definitions,
    EnvVar,
    ExecutorDefinition,
    in_process_executor,
    multiprocess_executor,
)

from assets.alerts import AlertsResource, deliver_alerts_sensor
from assets.ingestion import build_ingestion_asset
from assets.partitions import backfill_policy, daily_partitions
from assets.resources import CocApiResource, WarehouseResource
from assets.schedules import build_nightly_schedule
from assets.warehouse import build_warehouse_asset, mart_specs
from pipelines.coc.errors import ConfigError
from pipelines.fast_exit import skip_teardown_at_exit
from pipelines.settings import lookback_days_from_env, timezone_from_env


def _env(name: str) -> EnvVar | None:
    """An ``EnvVar`` for a variable that is set, else None (the setting's default applies)."""
    return EnvVar(name) if os.environ.get(name, "").strip() else None


#: ``COC_EXECUTOR`` values
EXECUTORS: dict[str, ExecutorDefinition] = {
    "in_process": in_process_executor,
    "multiprocess": multiprocess_executor,
}


def executor_from_env(value: str | None) -> ExecutorDefinition:
    """The executor ``COC_EXECUTOR`` names (default in-process); a clear error otherwise."""
    name = (value or "").strip() or "in_process"
    if name not in EXECUTORS:
        raise ConfigError(f"COC_EXECUTOR must be one of {', '.join(EXECUTORS)}, not {name!r}")
    return EXECUTORS[name]


def _build() -> Definitions:
    # checked here, so a bad value is a code-location load error that names the variable
    timezone = timezone_from_env(os.environ)
    lookback = lookback_days_from_env(os.environ)
    partitions = daily_partitions(timezone)
    executor = executor_from_env(os.environ.get("COC_EXECUTOR"))
    backfill = backfill_policy(os.environ.get("COC_BACKFILL_DAYS_PER_RUN", ""))
    coc = CocApiResource(
        endpoint=_env("COC_ENDPOINT"),
        ak=_env("COC_AK"),
        sk=_env("COC_SK"),
        token=_env("COC_TOKEN"),
        project_id=_env("COC_PROJECT_ID"),
        ca_bundle=_env("COC_CA_BUNDLE"),
        max_rps=_env("COC_MAX_RPS"),
        concurrency=_env("COC_CONCURRENCY"),
        max_attempts=_env("COC_MAX_ATTEMPTS"),
        retry_budget_s=_env("COC_RETRY_BUDGET_S"),
        redis_url=_env("COC_REDIS_URL"),
    )
    warehouse = WarehouseResource(
        warehouse=_env("COC_WAREHOUSE"),
        duckdb=_env("COC_DUCKDB"),
        timezone=timezone,
        day_lock_timeout_s=_env("COC_DAY_LOCK_TIMEOUT_S"),
        redis_url=_env("COC_REDIS_URL"),
        aws_access_key_id=_env("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=_env("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=_env("AWS_SESSION_TOKEN"),
        aws_region=_env("AWS_REGION") or _env("AWS_DEFAULT_REGION"),
        aws_endpoint_url=_env("AWS_ENDPOINT_URL"),
        s3_url_style=_env("COC_S3_URL_STYLE"),
        s3_conditional_put=_env("COC_S3_CONDITIONAL_PUT"),
        s3_timeout_s=_env("COC_S3_TIMEOUT_S"),
        s3_connect_timeout_s=_env("COC_S3_CONNECT_TIMEOUT_S"),
        vacuum_retention_hours=_env("COC_VACUUM_RETENTION_HOURS"),
        max_shrink=_env("COC_MAX_SHRINK"),
        allow_shrink=_env("COC_ALLOW_SHRINK"),
        archive_retention_days=_env("COC_ARCHIVE_RETENTION_DAYS"),
    )
    return Definitions(
        assets=[
            build_ingestion_asset(partitions, backfill),
            build_warehouse_asset(partitions, backfill),
            *mart_specs(),
        ],
        schedules=[build_nightly_schedule(timezone, lookback, executor)],
        sensors=[deliver_alerts_sensor],
        resources={
            "coc": coc,
            "warehouse": warehouse,
            "alerts": AlertsResource(
                channels=_env("COC_ALERT_CHANNELS"),
                dashboard_url=_env("COC_DASHBOARD_URL"),
                digest=_env("COC_ALERT_DIGEST"),
            ),
        },
        # a run is one process: its two steps run one after the other anyway, and a Celery
        # worker's pool process (deploy/) may not fork step processes of its own
        executor=executor,
    )


defs = _build()
# a `dagster` command exits 0.7 s sooner (pipelines/fast_exit.py)
skip_teardown_at_exit()
