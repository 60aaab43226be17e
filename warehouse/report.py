"""The failure-rate report: ``failure_rates_daily`` by day and one key, as a terminal table,
after the newest day's ``failure_shifts`` alerts.

``failure_report`` reads the numbers from the DuckDB file (read-only); ``format_report``
turns them into aligned text. The window is the ``days`` most recent days ending at
``until``, by default the newest day in the warehouse, and the title names the dates, so a
warehouse that stopped being fed shows its last data with its dates rather than nothing.

``newest_alerts`` reads the alerts of the newest day of ``failure_shifts`` (most surprising
first); ``describe_alert`` is the one line that both ``format_alerts`` (the report) and the
Dagster asset check print for each.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from datetime import date, timedelta
from typing import NamedTuple

import duckdb

from pipelines.settings import ObjectStoreSettings
from warehouse.build import connect, scalar

#: ``--by`` choices and the ``failure_rates_daily`` column each groups by.
GROUPINGS: dict[str, str] = {
    "region": "region_id",
    "zone": "zone_id",
    "application": "application",
    "script": "script_name",
}
NULL_KEY = "(none)"


class ReportRow(NamedTuple):
    dt: date
    key: str | None
    instances: int
    failed: int
    failure_rate: float | None


def failure_report(
    duckdb_path: str | os.PathLike[str],
    *,
    days: int = 7,
    by: str = "region",
    until: date | None = None,
    object_store: ObjectStoreSettings | None = None,
) -> list[ReportRow]:
    """Instances, failures and failure rate per day and ``by`` key, newest day first."""
    column = _grouping_column(by)
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    con = connect(duckdb_path, read_only=True, object_store=object_store)
    try:
        if until is None:
            until = scalar(con, "SELECT max(dt) FROM execution_instances")
            if until is None:
                return []
        first = until - timedelta(days=days - 1)
        rows = con.execute(
            f"""
            SELECT
                dt,
                {column} AS key,
                CAST(sum(instances) AS BIGINT) AS instances,
                CAST(sum(failed) AS BIGINT) AS failed,
                failure_rate(sum(failed), sum(instances)) AS failure_rate
            FROM failure_rates_daily
            WHERE dt BETWEEN ? AND ?
            GROUP BY dt, {column}
            ORDER BY dt DESC, {column} NULLS LAST
            """,
            [first, until],
        ).fetchall()
    finally:
        con.close()
    return [ReportRow(*row) for row in rows]


def format_report(rows: Sequence[ReportRow], *, by: str = "region") -> str:
    """An aligned table with a title, one line per row, and a total line."""
    _grouping_column(by)
    if not rows:
        return f"Failure rate by {by}: no instances in the warehouse for this window."
    first, last = min(r.dt for r in rows), max(r.dt for r in rows)
    instances = sum(r.instances for r in rows)
    failed = sum(r.failed for r in rows)
    header = ("day", by, "instances", "failed", "failure rate")
    body = [
        (
            r.dt.isoformat(),
            NULL_KEY if r.key is None else r.key,
            f"{r.instances:,}",
            f"{r.failed:,}",
            _percent(r.failure_rate),
        )
        for r in rows
    ]
    total = ("total", "", f"{instances:,}", f"{failed:,}", _percent(_rate(failed, instances)))
    widths = [max(_width(line[i]) for line in (header, *body, total)) for i in range(len(header))]
    rule = tuple("-" * w for w in widths)
    lines = [
        f"Failure rate by {by}, {first.isoformat()} to {last.isoformat()}",
        "(failed = ABNORMAL; instances = FINISHED, ABNORMAL or ROLLBACKED; CANCELED not counted)",
        "",
        *(_line(cells, widths) for cells in (header, rule, *body, rule, total)),
    ]
    return "\n".join(lines)


def _grouping_column(by: str) -> str:
    try:
        return GROUPINGS[by]
    except KeyError:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}") from None


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Text columns (day, key) left-aligned, numbers right-aligned."""
    left = [cell + " " * (w - _width(cell)) for cell, w in zip(cells[:2], widths[:2], strict=True)]
    right = [" " * (w - _width(cell)) + cell for cell, w in zip(cells[2:], widths[2:], strict=True)]
    return "  ".join(left + right).rstrip()


def _width(text: str) -> int:
    """Columns a string takes in a terminal: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _rate(failed: int, instances: int) -> float | None:
    return failed / instances if instances else None


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def format_hotspots(duckdb_path: str | os.PathLike[str], *, days: int = 7, top: int = 5) -> str:
    """Where failures concentrate over the window: zones, scripts, agents, messages."""
    con = connect(duckdb_path, read_only=True)
    try:
        last = scalar(con, "SELECT max(dt) FROM execution_instances")
        if last is None:
            return "(no data)"
        first = last - timedelta(days=days - 1)
        window = f"dt BETWEEN DATE '{first.isoformat()}' AND DATE '{last.isoformat()}'"
        sections = []
        for title, column in (("zones", "zone_id"), ("scripts", "script_name")):
            rows = con.execute(
                f"""
                SELECT {column}, sum(instances), sum(failed),
                    failure_rate(sum(failed), sum(instances))
                FROM failure_rates_daily WHERE {window}
                GROUP BY ALL HAVING sum(instances) >= 100
                ORDER BY 4 DESC NULLS LAST, 1 LIMIT {int(top)}
                """
            ).fetchall()
            sections.append((f"highest failure rate by {title}", rows))
        rows = con.execute(
            f"""
            SELECT agent_status, count(*) FILTER (counted(status)),
                   count(*) FILTER (failed(status)),
                   failure_rate(count(*) FILTER (failed(status)), count(*) FILTER (counted(status)))
            FROM execution_instances WHERE {window}
            GROUP BY ALL ORDER BY 4 DESC NULLS LAST LIMIT {int(top)}
            """
        ).fetchall()
        sections.append(("failure rate by agent status", rows))
        messages = con.execute(
            f"""
            SELECT message_pattern, instances, hosts FROM failure_messages
            WHERE CAST(last_seen AS DATE) >= DATE '{first.isoformat()}'
            ORDER BY instances DESC LIMIT 3
            """
        ).fetchall()
    finally:
        con.close()
    lines = []
    for title, rows in sections:
        lines.append(f"{title}:")
        for key, instances, failed, rate in rows:
            label = NULL_KEY if key is None else str(key)
            lines.append(
                f"  {label}{' ' * max(1, 24 - _width(label))}{_percent(rate):>6} "
                f"({failed:,} of {instances:,})"
            )
    lines.append("most frequent failure messages (digits, ids, addresses masked):")
    for pattern, instances, hosts in messages:
        text = (pattern or "(no message)").replace("\n", " ")
        lines.append(f"  {instances:>6,} on {hosts:,} hosts  {text[:90]}")
    return "\n".join(lines)


class ShiftAlert(NamedTuple):
    """One alerting row of ``failure_shifts``; ``host_name`` names a host key when known."""

    dt: date
    dimension: str
    key: str | None
    instances: int
    failed: int
    failure_rate: float
    baseline_instances: int
    baseline_failed: int
    baseline_rate: float | None
    score: float
    since: date
    host_name: str | None = None
    #: for an episode open since before ``dt``: the key's rate frozen before its onset, and
    #: the highest score of the episode (``alert_episodes``)
    onset_baseline_rate: float | None = None
    peak_score: float | None = None


def newest_alerts(duckdb_path: str | os.PathLike[str]) -> tuple[date | None, list[ShiftAlert]]:
    """The newest day of ``failure_shifts`` and its alerts, highest score first.

    ``(None, [])`` when the mart is empty, or absent (a file built before it existed).
    """
    con = connect(duckdb_path, read_only=True)
    try:
        try:
            newest = scalar(con, "SELECT max(dt) FROM failure_shifts")
        except duckdb.CatalogException:
            return None, []
        if newest is None:
            return None, []
        query = """
            SELECT
                s.dt, s.dimension, s.key, s.instances, s.failed, s.failure_rate,
                s.baseline_instances, s.baseline_failed, s.baseline_rate, s.score, s.since,
                h.host_name, {episode}
            FROM failure_shifts AS s
            LEFT JOIN host_failures AS h
                ON s.dimension = 'host' AND h.resource_id = s.key
            {join}
            WHERE s.dt = ? AND s.alert
            ORDER BY s.score DESC, s.dimension, s.key
            """
        join = """LEFT JOIN alert_episodes AS e
                ON e.dimension = s.dimension AND e.key IS NOT DISTINCT FROM s.key
                AND e.opened = s.since AND s.since < s.dt"""
        try:
            rows = con.execute(
                query.format(episode="e.baseline_rate, e.peak_score", join=join), [newest]
            ).fetchall()
        except duckdb.CatalogException:  # a file built before alert_episodes existed
            rows = con.execute(query.format(episode="NULL, NULL", join=""), [newest]).fetchall()
    finally:
        con.close()
    return newest, [ShiftAlert(*row) for row in rows]


def describe_alert(alert: ShiftAlert) -> str:
    """``zone cn-east-3b: 12.0% (250 of 2,080) against 1.8% (147 of 8,369) before, since
    2026-11-22, score 19.0``; a key without a baseline reads ``new: no runs in the 7 days
    before``."""
    key = NULL_KEY if alert.key is None else alert.key.replace("\n", " ")
    if len(key) > 100:
        key = key[:99] + "…"
    if alert.host_name:
        key = f"{key} ({alert.host_name})"
    today = f"{_share(alert.failure_rate)} ({alert.failed:,} of {alert.instances:,})"
    if alert.since < alert.dt and alert.peak_score is not None:
        # an episode still open: what it is compared with is the rate frozen at its onset
        before = (
            "against no runs before its onset"
            if alert.onset_baseline_rate is None
            else f"against {_share(alert.onset_baseline_rate)} before its onset"
        )
        days = (alert.dt - alert.since).days + 1
        return (
            f"{alert.dimension} {key}: {today} {before}, open since {alert.since.isoformat()} "
            f"({days} days), peak score {alert.peak_score:.1f}"
        )
    if alert.baseline_instances:
        before = (
            f"against {_share(alert.baseline_rate)} ({alert.baseline_failed:,} of "
            f"{alert.baseline_instances:,}) in the 7 days before"
        )
    else:
        before = "new: no runs in the 7 days before"
    return (
        f"{alert.dimension} {key}: {today} {before}, since {alert.since.isoformat()}, "
        f"score {alert.score:.1f}"
    )


def format_alerts(newest: date | None, alerts: Sequence[ShiftAlert]) -> str:
    """The newest day's alerts, one line each, or a line saying there are none."""
    if newest is None:
        return "Failure shifts: no data yet."
    if not alerts:
        return f"Failure shifts on {newest.isoformat()} (newest day): no alerts."
    noun = "alert" if len(alerts) == 1 else "alerts"
    lines = [f"Failure shifts on {newest.isoformat()} (newest day): {len(alerts)} {noun}"]
    lines += [f"  {describe_alert(alert)}" for alert in alerts]
    return "\n".join(lines)


def _share(rate: float | None) -> str:
    """A percentage that keeps two significant digits below 1% (message patterns' shares)."""
    if rate is not None and 0 < rate < 0.01:
        return f"{rate * 100:.2g}%"
    return _percent(rate)


def format_open_episodes(duckdb_path: str | os.PathLike[str]) -> str:
    """The episodes of ``alert_episodes`` still open, longest open first, one line each."""
    con = connect(duckdb_path, read_only=True)
    try:
        try:
            rows = con.execute(
                """
                SELECT dimension, key, opened, days, failure_rate, baseline_rate, failed,
                    instances
                FROM alert_episodes WHERE closed IS NULL
                ORDER BY opened, dimension, key
                """
            ).fetchall()
        except duckdb.CatalogException:
            return "Alert episodes: none computed yet."
    finally:
        con.close()
    if not rows:
        return "Alert episodes: none open."
    lines = [f"Alert episodes open: {len(rows)}"]
    for dimension, key, opened, days, rate, baseline, failed, instances in rows:
        name = NULL_KEY if key is None else key.replace("\n", " ")
        name = name[:99] + "…" if len(name) > 100 else name
        lines.append(
            f"  {dimension} {name}: since {opened.isoformat()} (open {days} days), "
            f"{_share(rate)} against {_share(baseline)} before, "
            f"{failed:,} failed of {instances:,}"
        )
    return "\n".join(lines)
