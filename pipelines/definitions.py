"""``defs``: the Dagster wiring, and nothing else.

The partition time zone and the days per backfill run are read when the code location loads
(they shape the partitions and the backfills);
every other setting is an ``EnvVar`` resolved at run time, so secrets never pass through
this module, the UI or run config.
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar, in_process_executor

from assets.ingestion import build_ingestion_asset
from assets.partitions import backfill_policy, daily_partitions
from assets.resources import CocApiResource, WarehouseResource
from assets.schedules import build_nightly_schedule
from assets.warehouse import build_warehouse_asset
from pipelines.settings import lookback_days_from_env, timezone_from_env


def _env(name: str) -> EnvVar | None:
    """An ``EnvVar`` for a variable that is set, else None (the setting's default applies)."""
    return EnvVar(name) if os.environ.get(name, "").strip() else None


def _build() -> Definitions:
    # checked here, so a bad value is a code-location load error that names the variable
    timezone = timezone_from_env(os.environ)
    lookback = lookback_days_from_env(os.environ)
    partitions = daily_partitions(timezone)
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
        s3_retire_grace_s=_env("COC_S3_RETIRE_GRACE_S"),
    )
    return Definitions(
        assets=[
            build_ingestion_asset(partitions, backfill),
            build_warehouse_asset(partitions, backfill),
        ],
        schedules=[build_nightly_schedule(timezone, lookback)],
        resources={"coc": coc, "warehouse": warehouse},
        # a run is one process: its two steps run one after the other anyway, and a Celery
        # worker's pool process (deploy/) may not fork step processes of its own
        executor=in_process_executor,
    )


defs = _build()
