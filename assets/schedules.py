"""The nightly schedule: yesterday, plus the days before it again (late finishers)."""

from datetime import datetime, timedelta

from dagster import (
    AssetSelection,
    ExecutorDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from assets.partitions import START_DATE
from pipelines.settings import DEFAULT_LOOKBACK_DAYS, MAX_LOOKBACK_DAYS

#: The run tags that make one run cover a range of partitions (Dagster's documented
#: ``dagster/asset_partition_range_*`` tags; Dagster exports no public name for them, and
#: ``RunRequest`` takes no range argument). A test reads them back through the public
#: ``RunRequest.partition_key_range``.
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"

__all__ = ["DEFAULT_LOOKBACK_DAYS", "build_nightly_schedule", "nightly_range"]


def nightly_range(scheduled: datetime, lookback_days: int) -> tuple[str, str]:
    """The partition keys ``(first, last)`` a run scheduled at ``scheduled`` should cover."""
    _check_lookback(lookback_days)
    yesterday = (scheduled - timedelta(days=1)).date()
    first = max(
        yesterday - timedelta(days=lookback_days), datetime.fromisoformat(START_DATE).date()
    )
    return first.isoformat(), yesterday.isoformat()


def _check_lookback(lookback_days: int) -> None:
    """A negative lookback would ask for a range that ends before it starts."""
    if not 0 <= lookback_days <= MAX_LOOKBACK_DAYS:
        raise ValueError(
            f"COC_LOOKBACK_DAYS must be within 0..{MAX_LOOKBACK_DAYS}, got {lookback_days}"
        )


def build_nightly_schedule(
    timezone: str, lookback_days: int, executor: ExecutorDefinition | None = None
) -> ScheduleDefinition:
    """The nightly job and its schedule; ``executor`` runs the job's steps (None: the
    definitions' executor)."""
    _check_lookback(lookback_days)
    job = define_asset_job("coc_nightly", selection=AssetSelection.all(), executor_def=executor)

    @schedule(
        name="coc_nightly_schedule",
        cron_schedule="0 2 * * *",
        execution_timezone=timezone,
        job=job,
        description=(
            f"02:00 {timezone}: yesterday and the {lookback_days} days before it, "
            "in one run, then the warehouse"
        ),
    )
    def coc_nightly(context: ScheduleEvaluationContext) -> RunRequest:
        first, last = nightly_range(context.scheduled_execution_time, lookback_days)
        return RunRequest(
            run_key=f"nightly-{last}",
            tags={PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last},
        )

    return coc_nightly
