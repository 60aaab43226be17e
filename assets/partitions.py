"""The daily partitions: one calendar day of ticket creation in ``COC_TIMEZONE``."""

from __future__ import annotations

from dagster import BackfillPolicy, DailyPartitionsDefinition

from pipelines.variables import BY_NAME

#: the first day a backfill may ask for
START_DATE = "2024-01-01"


def daily_partitions(timezone: str) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=START_DATE, timezone=timezone)


#: one machine: a ``--partition-range`` or a backfill runs as one run (one client, one rate
#: gate, days in sequence)
SINGLE_RUN = BackfillPolicy.single_run()


def backfill_policy(days_per_run: str) -> BackfillPolicy:
    """``COC_BACKFILL_DAYS_PER_RUN``: empty = one run for the whole range; ``N`` = a run per
    ``N`` days, so a deployment with workers spreads a backfill over them (``deploy/``)."""
    days = BY_NAME["COC_BACKFILL_DAYS_PER_RUN"].parse(days_per_run)
    if days is None:
        return SINGLE_RUN
    return BackfillPolicy.multi_run(max_partitions_per_run=int(days))
