"""The dashboard's queries: plain functions over a read-only DuckDB connection.

Every panel reads a mart (``instances_daily``, ``host_failures_daily``,
``failure_messages_daily``, ``ticket_outcomes``, ``failure_shifts``, ``alert_episodes``),
small tables computed at build time, except the drill-downs: the ticket's reads one day's
partition of ``order_batches`` and ``execution_instances`` filtered by ticket, an episode's
the failed instances of its key over its days. ``open_warehouse`` opens the
file for one refresh; the page closes it at the end of the refresh, so a rebuilt file is seen
at the next one (DuckDB keeps a database per path while any connection to it is open).

The same counting rule as the marts, through the file's macros (``sql/macros.sql``):
``counted(status)``, ``failed(status)``; a failure rate is NULL (shown as none) without
instances.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pipelines.errors import UsageError
from pipelines.settings import ObjectStoreSettings
from warehouse.build import connect
from warehouse.publish import not_ours

#: how the README and the messages tell a user to make the file
BUILD_COMMAND = "make demo (or coc-etl build-warehouse with COC_WAREHOUSE set)"
_OPEN_THE_RIGHT_FILE = (
    "point --duckdb or COC_DUCKDB at the coc.duckdb that coc-etl built (by default "
    "coc.duckdb in COC_WAREHOUSE); coc-etl never replaces a file it did not build"
)
DEFAULT_DAYS = 7
TOP = 10
#: what the page reads; a file without them was built by an older release of the project
REQUIRED_VIEWS = (
    "instances_daily",
    "host_failures_daily",
    "failure_messages_daily",
    "ticket_outcomes",
    "order_batches",
    "execution_instances",
)


class DashboardError(UsageError):
    """Something the dashboard cannot show; the message says what and where."""


@dataclass(frozen=True, kw_only=True)
class Filters:
    """A date range (inclusive) and the keys to keep; an empty tuple keeps every key."""

    start: date
    end: date
    regions: tuple[str, ...] = ()
    applications: tuple[str, ...] = ()
    scripts: tuple[str, ...] = ()

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The period of the same length just before this one, same keys."""
        return Filters(
            start=self.start - timedelta(days=self.days),
            end=self.start - timedelta(days=1),
            regions=self.regions,
            applications=self.applications,
            scripts=self.scripts,
        )


@dataclass(frozen=True, kw_only=True)
class Headline:
    instances: int
    failed: int
    failure_rate: float | None
    previous_instances: int
    previous_failed: int
    previous_rate: float | None

    @property
    def rate_change(self) -> float | None:
        """Failure rate minus the previous period's, in rate units (0.01 = one point)."""
        if self.failure_rate is None or self.previous_rate is None:
            return None
        return self.failure_rate - self.previous_rate


@dataclass(frozen=True, kw_only=True)
class Options:
    """What the filters offer: the days with data and the keys seen."""

    first_day: date | None
    last_day: date | None
    regions: tuple[str, ...] = ()
    applications: tuple[str, ...] = ()
    scripts: tuple[str, ...] = ()

    def default_filters(self, days: int = DEFAULT_DAYS) -> Filters | None:
        """The last ``days`` days up to the newest day with data; None on an empty warehouse."""
        if self.last_day is None:
            return None
        return Filters(start=self.last_day - timedelta(days=days - 1), end=self.last_day)


@dataclass(frozen=True, kw_only=True)
class Refresh:
    """Everything the page shows outside the drill-down, read in one go."""

    headline: Headline
    rate_by_region: pd.DataFrame
    zones: pd.DataFrame
    scripts: pd.DataFrame
    agent_statuses: pd.DataFrame
    hosts: pd.DataFrame
    messages: pd.DataFrame
    tickets: pd.DataFrame
    alerts: pd.DataFrame | None = field(default=None)
    episodes: pd.DataFrame | None = field(default=None)
    drift: pd.DataFrame | None = field(default=None)


def open_warehouse(
    duckdb_path: str | os.PathLike[str], *, object_store: ObjectStoreSettings | None = None
) -> duckdb.DuckDBPyConnection:
    """Open ``coc.duckdb`` read-only, or say clearly why not (missing, not a DuckDB file);
    with ``object_store``, its views over an ``s3://`` warehouse can be read."""
    path = Path(duckdb_path)
    if not path.is_file():
        raise DashboardError(f"no DuckDB file at {path}: build it with {BUILD_COMMAND}")
    foreign = not_ours(path)
    if foreign is not None:
        # a build would refuse it too: the way out is the warehouse's own file, not a rebuild
        raise DashboardError(f"{path} is not a coc.duckdb: {foreign}; {_OPEN_THE_RIGHT_FILE}")
    try:
        con = connect(path, read_only=True, object_store=object_store)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DashboardError(
            f"{path} is not a readable DuckDB file ({first}); rebuild it with {BUILD_COMMAND}"
        ) from None
    missing = _missing_views(con)
    if missing:
        con.close()
        raise DashboardError(
            f"{path} lacks the views {', '.join(missing)}; rebuild it with {BUILD_COMMAND}"
        )
    return con


def _missing_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    found = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    return [name for name in REQUIRED_VIEWS if name not in found]


def options(con: duckdb.DuckDBPyConnection) -> Options:
    row = con.execute("SELECT min(dt), max(dt) FROM instances_daily").fetchone()
    first, last = row if row is not None else (None, None)

    def keys(column: str) -> tuple[str, ...]:
        sql = f"SELECT DISTINCT {column} FROM instances_daily WHERE {column} IS NOT NULL ORDER BY 1"
        return tuple(r[0] for r in con.execute(sql).fetchall())

    return Options(
        first_day=first,
        last_day=last,
        regions=keys("region_id"),
        applications=keys("application"),
        scripts=keys("script_name"),
    )


def _where(f: Filters, *, scripts: bool = True) -> tuple[str, list[Any]]:
    """The WHERE clause of a mart with dt, region_id, application and script_name."""
    clauses = ["dt BETWEEN ? AND ?"]
    params: list[Any] = [f.start, f.end]
    keyed = [("region_id", f.regions), ("application", f.applications)]
    if scripts:
        keyed.append(("script_name", f.scripts))
    for column, values in keyed:
        if values:
            clauses.append(f"list_contains(?, {column})")
            params.append(list(values))
    return " AND ".join(clauses), params


def _counts(con: duckdb.DuckDBPyConnection, f: Filters) -> tuple[int, int]:
    where, params = _where(f)
    row = con.execute(
        "SELECT coalesce(sum(instances), 0)::BIGINT, coalesce(sum(failed), 0)::BIGINT "
        f"FROM instances_daily WHERE {where}",
        params,
    ).fetchone()
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)


def _rate(failed: int, instances: int) -> float | None:
    return failed / instances if instances else None


def headline(con: duckdb.DuckDBPyConnection, f: Filters) -> Headline:
    instances, failed = _counts(con, f)
    previous_instances, previous_failed = _counts(con, f.previous())
    return Headline(
        instances=instances,
        failed=failed,
        failure_rate=_rate(failed, instances),
        previous_instances=previous_instances,
        previous_failed=previous_failed,
        previous_rate=_rate(previous_failed, previous_instances),
    )


def rate_by_region(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """dt, region_id, instances, failed, failure_rate: one line per region."""
    where, params = _where(f)
    return con.execute(
        f"""
        SELECT dt, coalesce(region_id, '(none)') AS region_id,
            sum(instances)::BIGINT AS instances, sum(failed)::BIGINT AS failed,
            sum(failed) / nullif(sum(instances), 0) AS failure_rate
        FROM instances_daily WHERE {where}
        GROUP BY ALL ORDER BY dt, region_id
        """,
        params,
    ).df()


RANKED = {"zone": "zone_id", "script": "script_name", "agent_status": "agent_status"}


def ranked(
    con: duckdb.DuckDBPyConnection, f: Filters, dimension: str, limit: int = TOP
) -> pd.DataFrame:
    """key, instances, failed, failure_rate of one dimension, most failures first."""
    column = RANKED[dimension]
    where, params = _where(f)
    return con.execute(
        f"""
        SELECT coalesce({column}, '(none)') AS key,
            sum(instances)::BIGINT AS instances, sum(failed)::BIGINT AS failed,
            sum(failed) / nullif(sum(instances), 0) AS failure_rate
        FROM instances_daily WHERE {where}
        GROUP BY ALL ORDER BY failed DESC, instances DESC, key LIMIT ?
        """,
        [*params, limit],
    ).df()


def top_hosts(con: duckdb.DuckDBPyConnection, f: Filters, limit: int = TOP) -> pd.DataFrame:
    where, params = _where(f)
    return con.execute(
        f"""
        SELECT resource_id, arg_max(host_name, last_failed_at) AS host_name,
            arg_max(zone_id, last_failed_at) AS zone_id,
            sum(failed)::BIGINT AS failed, sum(instances)::BIGINT AS instances,
            sum(failed) / nullif(sum(instances), 0) AS failure_rate,
            max(last_failed_at) AS last_failed_at,
            arg_max(example_message, last_failed_at) AS example_message
        FROM host_failures_daily WHERE {where}
        GROUP BY resource_id ORDER BY failed DESC, resource_id LIMIT ?
        """,
        [*params, limit],
    ).df()


def top_messages(con: duckdb.DuckDBPyConnection, f: Filters, limit: int = TOP) -> pd.DataFrame:
    where, params = _where(f)
    return con.execute(
        f"""
        SELECT message_pattern, sum(instances)::BIGINT AS failed, max(last_seen) AS last_seen,
            arg_max(example_message, last_seen) AS example_message
        FROM failure_messages_daily WHERE {where}
        GROUP BY message_pattern ORDER BY failed DESC, message_pattern LIMIT ?
        """,
        [*params, limit],
    ).df()


def tickets(con: duckdb.DuckDBPyConnection, f: Filters, limit: int = 200) -> pd.DataFrame:
    """Tickets of the range (script filter only: a ticket spans regions), most failures first."""
    params: list[Any] = [f.start, f.end]
    script = ""
    if f.scripts:
        script = " AND list_contains(?, script_name)"
        params.append(list(f.scripts))
    return con.execute(
        f"""
        SELECT dt, execute_uuid, script_name, creator, status, batches, instances, failed,
            failure_rate
        FROM ticket_outcomes WHERE dt BETWEEN ? AND ?{script}
        ORDER BY failed DESC, dt DESC, execute_uuid LIMIT ?
        """,
        [*params, limit],
    ).df()


def ticket_batches(con: duckdb.DuckDBPyConnection, day: date, execute_uuid: str) -> pd.DataFrame:
    """The ticket's batches with their instance counts: reads that day's partition only."""
    return _drill(
        con,
        """
        WITH counted AS (
            SELECT batch_index,
                count(*) FILTER (WHERE counted(status)) AS instances,
                count(*) FILTER (WHERE failed(status)) AS failed
            FROM execution_instances WHERE dt = ? AND execute_uuid = ?
            GROUP BY batch_index
        )
        SELECT b.batch_index, b.rotation_strategy, b.total_instances, b.instances_ingested,
            coalesce(c.instances, 0) AS instances, coalesce(c.failed, 0) AS failed
        FROM order_batches AS b LEFT JOIN counted AS c USING (batch_index)
        WHERE b.dt = ? AND b.execute_uuid = ?
        ORDER BY b.batch_index
        """,
        [day, execute_uuid, day, execute_uuid],
    )


def failed_instances(
    con: duckdb.DuckDBPyConnection, day: date, execute_uuid: str, batch_index: int | None = None
) -> pd.DataFrame:
    """The ticket's failed instances (one batch, or all) with host, zone and message."""
    params: list[Any] = [day, execute_uuid]
    batch = ""
    if batch_index is not None:
        batch = " AND batch_index = ?"
        params.append(batch_index)
    return _drill(
        con,
        f"""
        SELECT batch_index, instance_id, host_name, resource_id, zone_id, fixed_ip,
            agent_status, finished_at, message
        FROM execution_instances
        WHERE dt = ? AND execute_uuid = ? AND failed(status){batch}
        ORDER BY batch_index, instance_id
        """,
        params,
    )


def _drill(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> pd.DataFrame:
    """A drill-down query; an unreadable Parquet file behind the view is named, not a trace."""
    try:
        return con.execute(sql, params).df()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise DashboardError(
            f"the drill-down cannot read the Parquet behind its views: {first}"
        ) from None


def alerts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """The newest day's alert rows of ``failure_shifts``; None while that mart is absent."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = 'failure_shifts'"
    ).fetchone()
    if not exists or not exists[0]:
        return None
    return con.execute(
        """
        SELECT dt, dimension, key, failure_rate, baseline_rate, score, since, instances, failed
        FROM failure_shifts
        WHERE alert AND dt = (SELECT max(dt) FROM failure_shifts)
        ORDER BY score DESC, dimension, key
        """
    ).df()


def episodes(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame | None:
    """``alert_episodes``: every open one first (the longest open first), then those closed
    within the range, newest first; None while that mart is absent."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = 'alert_episodes'"
    ).fetchone()
    if not exists or not exists[0]:
        return None
    return con.execute(
        """
        SELECT dimension, key, opened, last_alerted, closed, days, failure_rate, baseline_rate,
            peak_score, instances, failed
        FROM alert_episodes
        WHERE closed IS NULL OR (closed >= ? AND opened <= ?)
        ORDER BY closed IS NOT NULL, closed DESC, opened, dimension, key
        """,
        [f.start, f.end],
    ).df()


#: how an episode's key picks its instances, per dimension (``failure_shifts.sql``'s keys)
_EPISODE_KEYS = {
    "region": "i.region_id",
    "zone": "i.zone_id",
    "application": "i.application",
    "host": "i.resource_id",
    "script": "o.script_name",
    "script_version": "nullif(concat_ws(' ', o.script_name, o.script_version_name), '')",
    "message_pattern": "message_pattern(i.message)",
}


def episode_instances(
    con: duckdb.DuckDBPyConnection, dimension: str, key: str | None, start: date, end: date
) -> pd.DataFrame:
    """The failed instances of an episode's key on its alert days (``start`` to ``end``), the
    latest first (at most 200)."""
    column = _EPISODE_KEYS.get(dimension)
    if column is None:
        raise DashboardError(f"no drill-down for the dimension {dimension!r}")
    return _drill(
        con,
        f"""
        SELECT i.dt, i.execute_uuid, i.batch_index, i.instance_id, i.host_name, i.zone_id,
            o.script_name, i.finished_at, i.message
        FROM execution_instances AS i
        LEFT JOIN script_orders AS o ON o.execute_uuid = i.execute_uuid AND o.dt = i.dt
        WHERE i.dt BETWEEN ? AND ? AND failed(i.status)
            AND {column} IS NOT DISTINCT FROM ?
        ORDER BY i.finished_at DESC NULLS LAST, i.execute_uuid, i.batch_index, i.instance_id
        LIMIT 200
        """,
        [start, end, key],
    )


def schema_drift(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame | None:
    """What the API sent unlike its documentation over the filters' days; None without the
    ``schema_drift`` view (a file built before it existed)."""
    from warehouse.schema_drift import COLUMNS, has_drift_view, recent_drift_sql

    if not has_drift_view(con):
        return None
    sql, params = recent_drift_sql(f.days)
    return con.execute(f"SELECT {COLUMNS} FROM ({sql})", params).df()


def refresh(con: duckdb.DuckDBPyConnection, f: Filters) -> Refresh:
    """Every panel's query except the drill-down's: what one page refresh reads."""
    return Refresh(
        headline=headline(con, f),
        rate_by_region=rate_by_region(con, f),
        zones=ranked(con, f, "zone"),
        scripts=ranked(con, f, "script"),
        agent_statuses=ranked(con, f, "agent_status"),
        hosts=top_hosts(con, f),
        messages=top_messages(con, f),
        tickets=tickets(con, f),
        alerts=alerts(con),
        episodes=episodes(con, f),
        drift=schema_drift(con, f),
    )
