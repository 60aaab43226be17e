"""``defs``: the Dagster wiring, and nothing else.

The partition time zone, the days per backfill run and the executor are read when the code
location loads (they shape the definitions). The resources' fields come from the declared
variables (``assets/resources.py``): text, every secret among it, as an ``EnvVar`` resolved
at run time, so secrets never pass through this module, the UI or run config; numbers and
flags parsed and checked here, at load.

Executor: the steps of a run (the day's ingestion, then the warehouse) run in the run's own
process by default (``COC_EXECUTOR=in_process``): on one machine a new Python process per
step costs more than the warehouse step itself. ``COC_EXECUTOR=multiprocess`` gives
Dagster's process per step on a single machine that wants it; not under a Celery worker
(deploy/), whose pool process may not fork step processes of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster import (
    Definitions,
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
from pipelines.fast_exit import skip_teardown_at_exit
from pipelines.settings import lookback_days_from_env, timezone_from_env
from pipelines.variables import BY_NAME, process_env

#: ``COC_EXECUTOR`` values
EXECUTORS: dict[str, ExecutorDefinition] = {
    "in_process": in_process_executor,
    "multiprocess": multiprocess_executor,
}


def executor_from_env(value: str | None) -> ExecutorDefinition:
    """The executor ``COC_EXECUTOR`` names (default in-process); a clear error otherwise."""
    return EXECUTORS[str(BY_NAME["COC_EXECUTOR"].parse(value or ""))]


def _build(env: Mapping[str, str]) -> Definitions:
    # checked here, so a bad value is a code-location load error that names the variable
    timezone = timezone_from_env(env)
    lookback = lookback_days_from_env(env)
    partitions = daily_partitions(timezone)
    executor = executor_from_env(env.get("COC_EXECUTOR"))
    backfill = backfill_policy(env.get("COC_BACKFILL_DAYS_PER_RUN", ""))
    coc = CocApiResource.from_env(env)
    warehouse = WarehouseResource.from_env(env, timezone=timezone)
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
            "alerts": AlertsResource.from_env(env),
        },
        # a run is one process: its two steps run one after the other anyway, and a Celery
        # worker's pool process (deploy/) may not fork step processes of its own
        executor=executor,
    )


defs = _build(process_env())
# a `dagster` command exits 0.7 s sooner (pipelines/fast_exit.py)
skip_teardown_at_exit()
