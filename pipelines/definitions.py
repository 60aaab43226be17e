"""``defs``: the Dagster wiring, and nothing else.

The partition time zone and the executor are read when the code location loads (they shape
the definitions); every other setting is an ``EnvVar`` resolved at run time, so secrets
never pass through this module, the UI or run config.

Executor: the steps of a run (the day's ingestion, then the warehouse) run in the run's own
process by default (``COC_EXECUTOR=in_process``): on one machine a new Python process per
step costs more than the warehouse step itself. ``COC_EXECUTOR=multiprocess`` gives
Dagster's process per step (a distributed deployment may choose so, or set its own executor
on the job).
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

from assets.ingestion import build_ingestion_asset
from assets.partitions import daily_partitions
from assets.resources import CocApiResource, WarehouseResource
from assets.schedules import build_nightly_schedule
from assets.warehouse import build_warehouse_asset
from pipelines.coc.errors import ConfigError
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
    )
    warehouse = WarehouseResource(
        warehouse=_env("COC_WAREHOUSE"),
        duckdb=_env("COC_DUCKDB"),
        timezone=timezone,
        day_lock_timeout_s=_env("COC_DAY_LOCK_TIMEOUT_S"),
    )
    return Definitions(
        assets=[build_ingestion_asset(partitions), build_warehouse_asset(partitions)],
        schedules=[build_nightly_schedule(timezone, lookback, executor)],
        resources={"coc": coc, "warehouse": warehouse},
        executor=executor,
    )


defs = _build()
