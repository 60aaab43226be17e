"""``coc-etl ingest``: days without Dagster, then ``coc.duckdb`` rebuilt over them.

Everything that can be refused is refused before the heavy modules load (the client, Arrow,
DuckDB): a bad setting or day exits 2 in the time it takes to start Python.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

from coc_etl.cli.outcome import EXIT_OK, MartsStaleError, days_text
from pipelines.errors import ConfigError
from pipelines.variables import INGEST, help_section, process_env

if TYPE_CHECKING:
    from pipelines.ingest import DayResult
    from pipelines.settings import WarehouseSettings
    from warehouse.build import BuildResult

HELP = (
    help_section(INGEST)
    + """
exit codes:
  0 ok, 1 unexpected failure, 2 configuration or arguments (checked before any request),
  3 COC API failure (names ticket, batch, marker), 4 write failure (published days named),
  130 interrupted (SIGINT), 143 terminated (SIGTERM)
"""
)


def run(args: argparse.Namespace) -> int:
    from pipelines.settings import (
        check_day_range,
        client_settings_from_env,
        warehouse_settings_from_env,
    )

    env = process_env()
    client = client_settings_from_env(env)
    args.client = client
    wh = warehouse_settings_from_env(env)
    if getattr(args, "allow_shrink", False):
        wh = dataclasses.replace(wh, allow_shrink=True)
    last = args.to or args.day
    check_day_range(args.day, last, tz=wh.tz)

    from warehouse.preflight import check_before_run

    check_before_run(wh)
    days = [args.day + timedelta(days=i) for i in range((last - args.day).days + 1)]
    published: list[date] = args.published

    def on_day(result: DayResult) -> None:
        published.append(result.day)
        print(
            f"{result.day}: {result.walk.tickets} tickets, {result.walk.batches} batches, "
            f"{result.rows} instances, {result.http.requests} requests "
            f"({result.http.retries} retries) in {result.seconds:.1f}s",
            flush=True,
        )

    from pipelines.ingest import ingest_days

    try:
        ingest_days(
            client,
            wh,
            days,
            on_day=on_day,
            report=lambda m: print(m, flush=True),
        )
    except BaseException:
        if published:  # the days before the failing one are published: build over them
            args.rebuilt = rebuild_quietly(wh, published)
        raise
    rebuild(wh, published)
    return EXIT_OK


def rebuild(wh: WarehouseSettings, published: Sequence[date]) -> None:
    """Rebuild ``coc.duckdb`` after publishing; a failure says the marts are stale."""
    import duckdb

    from warehouse.build import BuildError, build_locked

    try:
        built = build_locked(wh, changed_days=published)
    except (BuildError, duckdb.Error, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MartsStaleError(
            f"published {days_text(published)}, but building {wh.duckdb_path} failed: "
            f"{first_line}; the marts are stale until `coc-etl build-warehouse` succeeds"
        ) from exc
    print(f"warehouse: {built.duckdb_path} ({build_kind(built)})")
    deliver_alerts_after_build(wh)


def deliver_alerts_after_build(wh: WarehouseSettings) -> None:
    """Send the alert episodes due (``warehouse/alerts``); a problem is said, never raised."""
    from warehouse.alerts.deliver import alert_settings_from_env, deliver_quietly

    try:
        settings = alert_settings_from_env(process_env())
    except ConfigError as exc:
        print(f"alerts: not delivered: {exc}", file=sys.stderr)
        return
    if not settings.channels:
        return
    report = deliver_quietly(
        duckdb_path=wh.duckdb_path,
        warehouse=wh.warehouse,
        settings=settings,
        redis_url=wh.redis_url,
    )
    print(f"alerts: {report.summary()}", file=sys.stderr if report.failed else sys.stdout)


def rebuild_quietly(wh: WarehouseSettings, published: Sequence[date]) -> bool:
    """Rebuild after a failed or interrupted range; whether it worked (said, never raised)."""
    try:
        rebuild(wh, published)
    except Exception as exc:  # the run's own failure is the one to report
        print(f"coc-etl: {exc}", file=sys.stderr)
        return False
    return True


def build_kind(built: BuildResult) -> str:
    if built.full:
        return f"full rebuild: {built.full_reason}"
    days = ", ".join(day.isoformat() for day in built.changed_days) or "none"
    return f"incremental: days {days}"
