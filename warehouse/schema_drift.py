"""What the ``schema_drift`` view of ``coc.duckdb`` says about recent days: the report's
section and the dashboard's panel read it here.

One row per endpoint, field path and kind over the ``days`` newest days that have instances:
the days it was seen on, how often, the first time, and one example value as sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import NamedTuple

import duckdb

COLUMNS = "endpoint, field_path, kind, expected, days, count, first_seen, example_value"


class DriftRow(NamedTuple):
    endpoint: str
    field_path: str
    kind: str
    expected: str | None
    days: int
    occurrences: int
    first_seen: datetime
    example_value: str | None


def has_drift_view(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = 'schema_drift'"
    ).fetchone()
    return bool(found and found[0])


def recent_drift_sql(days: int) -> tuple[str, list[object]]:
    """The query of the drift over the ``days`` newest days of ``execution_instances``."""
    sql = """
        WITH newest AS (SELECT max(dt) AS last FROM execution_instances)
        SELECT endpoint, field_path, kind, any_value(expected) AS expected,
               CAST(count(DISTINCT dt) AS BIGINT) AS days,
               CAST(sum(count) AS BIGINT) AS count,
               timezone('UTC', min(first_seen)) AS first_seen,
               arg_min(example_value, first_seen) AS example_value
        FROM schema_drift, newest
        WHERE dt > newest.last - CAST(? AS INTEGER)
        GROUP BY endpoint, field_path, kind
        ORDER BY kind, endpoint, field_path
    """
    return sql, [days]


def recent_drift(con: duckdb.DuckDBPyConnection, days: int) -> list[DriftRow]:
    if not has_drift_view(con):
        return []
    sql, params = recent_drift_sql(days)
    return [DriftRow(*row) for row in con.execute(sql, params).fetchall()]


def format_drift(rows: Sequence[DriftRow], days: int, newest: date | None = None) -> str:
    """The report's section: one line per finding, or a line saying there is none."""
    if not rows:
        return f"Schema drift: none in the last {days} day(s): the API sent what it documents."
    lines = [f"Schema drift in the last {days} day(s) (the raw archive keeps every field):"]
    for r in rows:
        expected = f", documented as {r.expected}" if r.expected else ""
        example = f", e.g. {r.example_value[:60]!r}" if r.example_value else ""
        lines.append(
            f"  {r.kind:<12} {r.endpoint} {r.field_path}{expected}: {r.occurrences}x on "
            f"{r.days} day(s), first {r.first_seen:%Y-%m-%d %H:%M} UTC{example}"
        )
    return "\n".join(lines)
