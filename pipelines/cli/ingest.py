"""``coc-etl ingest``: days without Dagster, then ``coc.duckdb`` rebuilt over them.

Everything that can be refused is refused before the heavy modules load (the client, Arrow,
DuckDB): a bad setting or day exits 2 in the time it takes to start Python.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

from pipelines.cli.outcome import EXIT_OK, MartsStaleError, days_text
from pipelines.coc.errors import ConfigError

if TYPE_CHECKING:
    from pipelines.ingest import DayResult
    from pipelines.settings import WarehouseSettings
    from warehouse.build import BuildResult

HELP = """\
environment:
  COC_ENDPOINT          base URL of the COC API (required; https, or http to loopback only)
  COC_AK, COC_SK        sign requests with SDK-HMAC-SHA256, or
  COC_TOKEN             send an IAM token (not both)
  COC_PROJECT_ID        sent as x-project-id
  COC_CA_BUNDLE         CA bundle for a private certificate authority
  COC_WAREHOUSE         warehouse root: a local folder or an s3:// URI (required)
  COC_DUCKDB            the DuckDB file (default: coc.duckdb in a local COC_WAREHOUSE)
  COC_TIMEZONE          zone of the day boundaries (default UTC; fixed per warehouse)
  COC_MAX_RPS           request rate cap, 1..10000 per second, 0 = no cap (default 50)
  COC_CONCURRENCY       requests in flight, 1..256 (default 16)
  COC_MAX_ATTEMPTS      attempts per request, 1..100 (default 8)
  COC_RETRY_BUDGET_S    seconds one request may spend retrying, 1..86400 (default 600)
  COC_DAY_LOCK_TIMEOUT_S  seconds to wait for another run of the same day, 0..86400 (600)
  COC_MAX_SHRINK        share of a published day's instances a run may drop (default 0.5)
  COC_ALLOW_SHRINK      1: publish a day however much it shrinks (or --allow-shrink)
  COC_ARCHIVE_RETENTION_DAYS  days of raw archive (raw_responses) kept; unset or 0: all

exit codes:
  0 ok, 1 unexpected failure, 2 configuration or arguments (checked before any request),
  3 COC API failure (names ticket, batch, marker), 4 write failure (published days named),
  130 interrupted (SIGINT), 143 terminated (SIGTERM)
"""


def check_build_target(duckdb_path: str) -> None:
    """``COC_DUCKDB`` can take the build (``warehouse.publish``), else a ``ConfigError``."""
    from warehouse.publish import BuildError
    from warehouse.publish import check_build_target as check

    try:
        check(duckdb_path)
    except BuildError as exc:
        raise ConfigError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from pipelines.settings import (
        check_day_range,
        client_settings_from_env,
        warehouse_settings_from_env,
    )

    client = client_settings_from_env(os.environ)
    args.client = client
    wh = warehouse_settings_from_env(os.environ)
    if getattr(args, "allow_shrink", False):
        wh = dataclasses.replace(wh, allow_shrink=True)
    last = args.to or args.day
    check_day_range(args.day, last, tz=wh.tz)

    from pipelines.preflight import check_warehouse

    check_warehouse(wh)
    check_build_target(wh.duckdb_path)
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
    """Send the alert episodes due (``pipelines/alerts``); a problem is said, never raised."""
    from pipelines.alerts.deliver import alert_settings_from_env, deliver_quietly

    try:
        settings = alert_settings_from_env(os.environ)
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
