"""Marts whose rows of a day depend on the days before it, recomputed where a change reaches.

A mart registered ``Rebuilt.TRAILING`` with ``trailing_days`` N (``marts.py``;
``failure_shifts``: baselines over the 7 days before a day, a dispersion over the G of the
day and the 7 before it) computes a day's rows from the per-day parts of that day and the N
days before it. Its SQL reads the parts through ``build_window(dt)``, a macro the build
defines first: true for a full build, else true for the days a change reaches and the N days
before each. A change on day ``c`` moves the rows of ``c .. c + N``: those days' rows are
deleted and computed again, from the parts of ``c - N .. c + N``; a day that lost its data
just loses its rows. Which days those are is the plan's (``plan.reached_days``,
``plan.read_days``).

What reaches further than N days is an episode: a trailing mart registered with ``episodes``
(``failure_shifts``) has its ``alert`` and ``since`` set by ``episodes.py``, which
follows each key from its onset for as long as it stays elevated, replayed from the first
recomputed day on. Columns whose names start with an underscore are stored for the episodes
but left out of the mart's view. The window macro is dropped once the rows are stored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date
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
from warehouse.episodes import track_episodes


def store_trailing(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    replaces: Sequence[date] | None,
    reads: Sequence[date] | None,
    episodes: bool,
    seconds: dict[str, float],
) -> str:
    """Compute a trailing mart into ``mart_data.<name>``: every day (``replaces`` None), else
    the rows of ``replaces`` from the parts of ``reads``; then, with ``episodes``, its episodes
    from the first replaced day on. Returns its name."""
    started = time.perf_counter()
    window = "true" if reads is None else f"d IN ({dates_sql(reads) or 'NULL'})"
    con.execute(f"CREATE OR REPLACE MACRO {WINDOW_MACRO}(d) AS {window}")
    name = run_definition(con, windowed(path))
    stored = f"{MART_SCHEMA}.{identifier(name)}"
    first: date | None
    if replaces is None:
        con.execute(f"CREATE OR REPLACE TABLE {stored} AS SELECT * FROM {identifier(name)}")
        first = scalar(con, f"SELECT min(dt) FROM {stored}")
    elif replaces:
        listed = dates_sql(replaces)
        con.execute(f"DELETE FROM {stored} WHERE dt IN ({listed})")
        con.execute(f"INSERT INTO {stored} SELECT * FROM {identifier(name)} WHERE dt IN ({listed})")
        first = min(replaces)
    else:
        first = None
    if episodes:
        track_episodes(con, stored, first)
    internal = [
        identifier(column)
        for (column,) in con.execute(
            "SELECT column_name FROM duckdb_columns() "
            "WHERE schema_name = ? AND table_name = ? AND starts_with(column_name, '_') "
            "ORDER BY column_index",
            [MART_SCHEMA, name],
        ).fetchall()
    ]
    hidden = f" EXCLUDE ({', '.join(internal)})" if internal else ""
    con.execute(f"CREATE OR REPLACE VIEW {identifier(name)} AS SELECT *{hidden} FROM {stored}")
    con.execute(f"DROP MACRO IF EXISTS {WINDOW_MACRO}")
    seconds[name] = time.perf_counter() - started
    return name
