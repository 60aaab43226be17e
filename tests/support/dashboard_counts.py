"""The dashboard's headline counts worked out straight from ``execution_instances`` (not
from a mart): what the dashboard's queries and pages are checked against."""

from __future__ import annotations

import duckdb

from warehouse.dashboard import queries as q

COUNTED = "status IN ('FINISHED', 'ABNORMAL', 'ROLLBACKED')"


def raw_counts(con: duckdb.DuckDBPyConnection, f: q.Filters) -> tuple[int, int]:
    """instances and failed straight from execution_instances (not from a mart)."""
    sql = f"""
        SELECT count(*) FILTER (WHERE {COUNTED}), count(*) FILTER (WHERE status = 'ABNORMAL')
        FROM execution_instances AS i
        LEFT JOIN (SELECT execute_uuid, dt, script_name FROM script_orders) AS o
            USING (execute_uuid, dt)
        WHERE i.dt BETWEEN ? AND ?
            AND (len(?) = 0 OR list_contains(?, i.region_id))
            AND (len(?) = 0 OR list_contains(?, i.application))
            AND (len(?) = 0 OR list_contains(?, o.script_name))
    """
    keys = [list(f.regions), list(f.applications), list(f.scripts)]
    params = [f.start, f.end, *(k for key in keys for k in (key, key))]
    row = con.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
