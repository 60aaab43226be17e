"""The daily partitions: one calendar day of ticket creation in ``COC_TIMEZONE``."""

from __future__ import annotations

from dagster import BackfillPolicy, DailyPartitionsDefinition

#: the first day a backfill may ask for
START_DATE = "2024-01-01"


def daily_partitions(timezone: str) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=START_DATE, timezone=timezone)


#: a ``--partition-range`` runs as one run: one client, one rate gate, days in sequence
BACKFILL = BackfillPolicy.single_run()
