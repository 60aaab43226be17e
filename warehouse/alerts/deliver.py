"""Deliver the episodes of ``alert_episodes`` to the configured channels, each event once.

After a build, ``deliver_alerts`` reads the episodes and, per channel:

- an open episode is sent ``opened`` once;
- a closed one is sent ``closed`` once if its ``opened`` was sent; one never sent is sent
  ``closed`` (with its onset day) only if it closed within ``recent_days`` of the newest day
  of data, so a backfill of old days never pages for episodes that closed long ago;
- with ``digest``, once per newest day, one ``open`` notice per episode still open;
- an episode sent ``opened`` that a later build no longer has (its days were ingested again
  with other data) is sent ``withdrawn`` once, so no page stays open for ever.

Every notice goes out under the ledger's lock (``ledger.py``) and is recorded as soon as it is
delivered: re-runs, backfills, lookback days and concurrent runs send nothing twice. A channel
that fails after its retries (``send.py``) is reported and left for the next run; its other
notices wait too. Nothing here raises for a delivery problem: ``deliver_quietly`` is what the
CLI and Dagster call, and it turns any error into a line of the report without a secret.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb

from pipelines.variables import ALERT_VARIABLES, Value, read_all
from warehouse.alerts.channels import Channel, channels_from_text
from warehouse.alerts.ledger import Ledger, open_ledger, record_name
from warehouse.alerts.messages import Episode, Notice, dashboard_link
from warehouse.alerts.send import DeliveryError, RetryPolicy, send

log = logging.getLogger(__name__)

#: a closed episode whose opening was never sent still pages if it closed this recently
DEFAULT_RECENT_DAYS = 2


@dataclass(frozen=True, kw_only=True)
class AlertSettings:
    channels: tuple[Channel, ...] = ()
    #: the dashboard's address, for a link filtered to the key (``COC_DASHBOARD_URL``)
    dashboard_url: str | None = field(default=None, repr=False)
    recent_days: int = DEFAULT_RECENT_DAYS
    #: a daily message of every episode still open (``COC_ALERT_DIGEST=1``)
    digest: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def alert_settings_from_env(env: Mapping[str, str]) -> AlertSettings:
    """``COC_ALERT_CHANNELS``, ``COC_DASHBOARD_URL``, ``COC_ALERT_DIGEST``."""
    return alert_settings(read_all(ALERT_VARIABLES, env))


def alert_settings(values: Mapping[str, Value]) -> AlertSettings:
    """``AlertSettings`` from checked values by field name (``read_all``, ``accept_all``)."""
    channels, url = values.get("channels"), values.get("dashboard_url")
    return AlertSettings(
        channels=channels_from_text(None if channels is None else str(channels)),
        dashboard_url=None if url is None else str(url),
        digest=bool(values.get("digest")),
    )


@dataclass
class DeliveryReport:
    #: "<channel>: <event> <dimension> <key>" per notice delivered
    sent: list[str] = field(default_factory=list)
    #: one line per channel that failed (no secret), or a problem before any sending
    failed: list[str] = field(default_factory=list)
    #: notices left for the next run (their channel failed)
    pending: int = 0

    def summary(self) -> str:
        parts = [f"{len(self.sent)} alert notices sent"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed ({'; '.join(self.failed)})")
        if self.pending:
            parts.append(f"{self.pending} left for the next run")
        return ", ".join(parts)


def read_episodes(duckdb_path: str) -> tuple[date | None, list[Episode]]:
    """The newest day of ``failure_shifts`` and every episode (none before the mart exists)."""
    if not os.path.exists(duckdb_path):
        return None, []
    con = duckdb.connect(duckdb_path, read_only=True)
    try:
        views = {
            v
            for (v,) in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        }
        if not {"alert_episodes", "failure_shifts"} <= views:
            return None, []
        newest = con.execute("SELECT max(dt) FROM failure_shifts").fetchall()[0][0]
        cursor = con.execute("SELECT * FROM alert_episodes ORDER BY opened, dimension, key")
        names = [d[0] for d in cursor.description]
        episodes = [Episode(**dict(zip(names, row, strict=True))) for row in cursor.fetchall()]
    finally:
        con.close()
    return newest, episodes


def due_notices(
    newest: date | None,
    episodes: list[Episode],
    channel: str,
    ledger: Ledger,
    *,
    recent_days: int,
    digest: bool,
) -> list[tuple[Notice, list[str]]]:
    """The notices ``channel`` has not had, each with the records it adds once delivered."""
    due: list[tuple[Notice, list[str]]] = []
    for e in episodes:
        opened = record_name(channel, "opened", e.identity)
        closed = record_name(channel, "closed", e.identity)
        if e.closed is None:
            if not ledger.has(opened):
                due.append((Notice(event="opened", episode=e), [opened]))
            elif digest and newest is not None:
                daily = record_name(channel, f"open {newest.isoformat()}", e.identity)
                if not ledger.has(daily):
                    due.append((Notice(event="open", episode=e), [daily]))
        elif not ledger.has(closed):
            if ledger.has(opened):
                due.append((Notice(event="closed", episode=e), [closed]))
            elif newest is not None and e.closed > newest - timedelta(days=recent_days):
                due.append((Notice(event="closed", episode=e), [opened, closed]))
    # sent as opened, never closed, and gone: its days were ingested again with other data
    current = {e.identity for e in episodes}
    prefix = record_name(channel, "opened", "")
    for record in ledger.starting(prefix):
        identity = record[len(prefix) :]
        closed = record_name(channel, "closed", identity)
        if identity not in current and not ledger.has(closed):
            due.append((Notice(event="withdrawn", episode=Episode.withdrawn(identity)), [closed]))
    return due


def deliver_alerts(
    *,
    duckdb_path: str,
    warehouse: str,
    settings: AlertSettings,
    redis_url: str | None = None,
    run_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Send what is due to every channel; see the module docstring."""
    report = DeliveryReport()
    if not settings.channels:
        return report
    newest, episodes = read_episodes(duckdb_path)
    if newest is None:  # no data, or a file built before the episodes
        return report
    with open_ledger(
        duckdb_path, warehouse=warehouse, redis_url=redis_url, run_id=run_id
    ) as ledger:
        for channel in settings.channels:
            due = due_notices(
                newest,
                episodes,
                channel.name,
                ledger,
                recent_days=settings.recent_days,
                digest=settings.digest,
            )
            for n, (notice, records) in enumerate(due):
                linked = Notice(
                    event=notice.event,
                    episode=notice.episode,
                    link=dashboard_link(settings.dashboard_url, notice.episode),
                )
                try:
                    send(channel, linked, retry=settings.retry, sleep=sleep)
                except DeliveryError as exc:
                    report.failed.append(str(exc))
                    report.pending += len(due) - n
                    break
                for record in records:
                    ledger.add(record)
                e = notice.episode
                report.sent.append(f"{channel.name}: {notice.event} {e.dimension} {e.key}")
    return report


def deliver_quietly(
    *,
    duckdb_path: str,
    warehouse: str,
    settings: AlertSettings,
    redis_url: str | None = None,
    run_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """``deliver_alerts``, never raising: what the CLI and Dagster call after a build."""
    try:
        report = deliver_alerts(
            duckdb_path=duckdb_path,
            warehouse=warehouse,
            settings=settings,
            redis_url=redis_url,
            run_id=run_id,
            sleep=sleep,
        )
    except Exception as exc:  # delivery never fails an ingestion
        # the class only: a driver's message may hold an address with its credentials
        report = DeliveryReport(failed=[f"alert delivery stopped: {type(exc).__name__}"])
    if report.failed:
        log.warning("alerts: %s", report.summary())
    elif report.sent:
        log.info("alerts: %s", report.summary())
    return report
