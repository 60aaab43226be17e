"""Marts whose rows of a day depend on the days before it, recomputed where a change reaches.

A mart with the header line ``-- build: trailing N`` (``failure_shifts``: baselines over the 7
days before a day, a dispersion over the G of the day and the 7 before it) computes a day's
rows from the per-day parts of that day and the N days before it. Its SQL reads the parts
through ``build_window(dt)``, a macro the build defines first: true for a full build, else
true for the days a change reaches and the N days before each. A change on day ``c`` moves
the rows of ``c .. c + N``: those days' rows are deleted and computed again, from the parts
of ``c - N .. c + N``; a day that lost its data just loses its rows.

What reaches further than N days is a run: ``since``, the first day of a key's run of
consecutive alert days, can start before the window. The mart's file defines
``<name>_since(first_day)``, a table macro over the mart's view (by then the stored rows)
answering (dt, dimension, key, since) for the alert rows from ``first_day`` on (a run that
reaches back past ``first_day`` keeps the ``since`` stored on the day before it); the build
sets ``since`` from it from the first recomputed day on, which covers the later days whose
run continues through a changed day. Both macros are dropped once the rows are stored.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import date, timedelta
from pathlib import Path

import duckdb

from warehouse.definitions import (
    MART_SCHEMA,
    WINDOW_MACRO,
    dates_sql,
    identifier,
    run_definition,
    scalar,
    windowed,
)


def reached_days(changed: Collection[date], reach: int) -> list[date]:
    """The days whose rows a change on ``changed`` moves: each day and the ``reach`` after."""
    return sorted({day + timedelta(days=k) for day in changed for k in range(reach + 1)})


def read_days(changed: Collection[date], reach: int) -> list[date]:
    """The days of parts needed to compute ``reached_days``: ``reach`` before each of them."""
    return sorted({day + timedelta(days=k) for day in changed for k in range(-reach, reach + 1)})


def store_trailing(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    days: frozenset[date] | None,
    seconds: dict[str, float],
    *,
    reach: int,
) -> str:
    """Compute a trailing mart into ``mart_data.<name>``: every day (``days`` None), else the
    days ``days`` reach; then ``since`` from the first of them on. Returns its name."""
    started = time.perf_counter()
    window = "true" if days is None else f"d IN ({dates_sql(read_days(days, reach)) or 'NULL'})"
    con.execute(f"CREATE OR REPLACE MACRO {WINDOW_MACRO}(d) AS {window}")
    name = run_definition(con, windowed(path))
    stored = f"{MART_SCHEMA}.{identifier(name)}"
    since = identifier(f"{name}_since")
    first: date | None
    if days is None:
        con.execute(f"CREATE OR REPLACE TABLE {stored} AS SELECT * FROM {identifier(name)}")
        first = scalar(con, f"SELECT min(dt) FROM {stored}")
    elif days:
        reached = reached_days(days, reach)
        listed = dates_sql(reached)
        con.execute(f"DELETE FROM {stored} WHERE dt IN ({listed})")
        con.execute(f"INSERT INTO {stored} SELECT * FROM {identifier(name)} WHERE dt IN ({listed})")
        first = reached[0]
    else:
        first = None
    con.execute(f"CREATE OR REPLACE VIEW {identifier(name)} AS SELECT * FROM {stored}")
    if first is not None:
        con.execute(
            f"UPDATE {stored} AS f SET since = r.since "
            f"FROM {since}(DATE '{first.isoformat()}') AS r "
            "WHERE f.dt = r.dt AND f.dimension = r.dimension "
            "AND f.key IS NOT DISTINCT FROM r.key AND f.since IS DISTINCT FROM r.since"
        )
    con.execute(f"DROP MACRO TABLE IF EXISTS {since}")
    con.execute(f"DROP MACRO IF EXISTS {WINDOW_MACRO}")
    seconds[name] = time.perf_counter() - started
    return name
