"""Storing the build's per-day and per-month rows, a group of days at a time, and tallies.

Per-day SQL (parts and per-day marts) runs over the table views of a group of days
(``day_chunks``) and replaces those days' rows in ``mart_data`` (``store_per_day``). The
per-month rollups replace a month's rows, reading that month's parts only through
``build_window(dt)`` (``store_rollups``).

A tally (``Rebuilt.TALLY`` in ``marts.py``) counts, over every month, in how many
months each key of a rollup appears: the all-time distinct keys that a mart counts (the hosts
of a message pattern) without merging every month's rows again. Its view reads the rollup
through ``build_window(dt)`` and answers the key columns, then the count. The build keeps it
by difference: before a month of the rollup is replaced it counts that month's old keys,
after it the new ones, and adds the difference to the stored tally, dropping keys whose count
reaches 0. So its cost follows the changed months' keys, and its rows are the distinct keys.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path

import duckdb

from warehouse.definitions import (
    MART_SCHEMA,
    ROLLUPS_DIR,
    WINDOW_MACRO,
    dates_sql,
    identifier,
    run_definition,
    scalar,
    windowed,
)
from warehouse.marts import Model, Rebuilt

#: The instances a build computes the per-day SQL over at a time (whole days, a larger day
#: alone): a full rebuild needs DuckDB's memory for one such group, not for the history.
CHUNK_ROWS = 4_000_000

#: the table whose rows size the groups of days
INSTANCES = "execution_instances"


def store_per_day(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    days: Collection[date],
    seconds: dict[str, float],
    *,
    view: bool,
) -> str:
    """Store a per-day definition's rows of ``days``, replacing those days' rows (a per-month
    rollup: ``days`` are the first days of the months to replace).

    With ``view`` the name then becomes a view of the stored rows (a mart); without, the
    computing view is dropped and the rows live in ``mart_data`` only (a part, a rollup).
    """
    started = time.perf_counter()
    name = run_definition(con, path)
    stored = f"{MART_SCHEMA}.{identifier(name)}"
    con.execute(f"CREATE TABLE IF NOT EXISTS {stored} AS SELECT * FROM {identifier(name)} LIMIT 0")
    if days:
        # literal dates, so that DuckDB prunes the Hive partitions to these days
        listed = dates_sql(days)
        con.execute(f"DELETE FROM {stored} WHERE dt IN ({listed})")
        con.execute(f"INSERT INTO {stored} SELECT * FROM {identifier(name)} WHERE dt IN ({listed})")
    if view:
        con.execute(f"CREATE OR REPLACE VIEW {identifier(name)} AS SELECT * FROM {stored}")
    else:
        con.execute(f"DROP VIEW {identifier(name)}")
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
    return name


def store_rollups(
    con: duckdb.DuckDBPyConnection,
    rollups: Sequence[Model],
    month: date | None,
    seconds: dict[str, float],
) -> None:
    """Replace the ``rollups``' rows of ``month`` (its first day), merged from the parts of
    its days only (their SQL reads the parts through ``build_window(dt)``), and bring the
    tallies up to date, in the order given (each tally after the rollup it counts: ``plan``);
    None: only create the tables that are missing (no day yet)."""
    if month is None:
        window = "false"
    else:
        end = (month + timedelta(days=32)).replace(day=1)
        window = f"d >= DATE '{month.isoformat()}' AND d < DATE '{end.isoformat()}'"
    con.execute(f"CREATE OR REPLACE MACRO {WINDOW_MACRO}(d) AS {window}")
    months = [] if month is None else [month]
    tallies = [m for m in rollups if m.rebuilt is Rebuilt.TALLY]
    # each tally's keys of the month before any rollup of it is replaced
    before = {m.name: _count_keys(con, m, "before") for m in tallies}
    for rollup in rollups:
        if rollup.rebuilt is Rebuilt.TALLY:
            _add_difference(con, rollup, before[rollup.name], seconds)
        else:
            store_per_day(con, _rollup_sql(rollup), months, seconds, view=False)
    con.execute(f"DROP MACRO {WINDOW_MACRO}")


def _rollup_sql(rollup: Model) -> Path:
    """A rollup's SQL file, checked to read through ``build_window``."""
    return windowed(ROLLUPS_DIR / f"{rollup.name}.sql")


def _count_keys(con: duckdb.DuckDBPyConnection, tally: Model, when: str) -> str | None:
    """A tally's counts of the month in ``build_window`` as they are now, into a temporary
    table (its name); None when the rollup it counts has no table yet."""
    source = tally.tally_of
    exists = scalar(
        con,
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
        [MART_SCHEMA, source],
    )
    if not exists:
        return None
    name = run_definition(con, _rollup_sql(tally))
    counted = identifier(f"{name}_{when}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {counted} AS SELECT * FROM {identifier(name)}")
    return counted


def _add_difference(
    con: duckdb.DuckDBPyConnection, tally: Model, before: str | None, seconds: dict[str, float]
) -> None:
    """Add a tally's counts of the month now, less those ``before``, to its stored rows."""
    started = time.perf_counter()
    after = _count_keys(con, tally, "after")
    if after is None:
        raise RuntimeError(f"{tally.name}: the rollup it counts, {tally.tally_of}, was not stored")
    name = tally.name
    stored = f"{MART_SCHEMA}.{identifier(name)}"
    con.execute(f"CREATE TABLE IF NOT EXISTS {stored} AS SELECT * FROM {after} LIMIT 0")
    columns = [
        c for (c,) in con.execute(f"SELECT name FROM pragma_table_info('{stored}')").fetchall()
    ]
    *keys, count = (identifier(c) for c in columns)
    old = f"SELECT {', '.join(keys)}, -{count} AS {count} FROM {before}" if before else ""
    diff = identifier(f"{name}_difference")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {diff} AS "
        f"SELECT {', '.join(keys)}, CAST(sum({count}) AS BIGINT) AS {count} "
        f"FROM ({' UNION ALL '.join(filter(None, [old, f'SELECT * FROM {after}']))}) "
        f"GROUP BY ALL HAVING sum({count}) <> 0"
    )
    same = " AND ".join(f"s.{k} IS NOT DISTINCT FROM d.{k}" for k in keys)
    con.execute(
        f"UPDATE {stored} AS s SET {count} = s.{count} + d.{count} FROM {diff} AS d WHERE {same}"
    )
    con.execute(
        f"INSERT INTO {stored} SELECT * FROM {diff} AS d "
        f"WHERE NOT EXISTS (SELECT 1 FROM {stored} AS s WHERE {same})"
    )
    con.execute(f"DELETE FROM {stored} WHERE {count} = 0")
    for table in filter(None, [before, after, diff]):
        con.execute(f"DROP TABLE {table}")
    con.execute(f"DROP VIEW {identifier(name)}")
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started


def day_chunks(
    con: duckdb.DuckDBPyConnection,
    days: Sequence[date],
    files: Mapping[tuple[str, date], list[str]],
    chunk_rows: int,
) -> list[frozenset[date]]:
    """``days`` in consecutive groups of at most ``chunk_rows`` instances (a larger day alone),
    counted from the Parquet footers; one empty group when there are no days, so that every
    stored table exists."""
    paths = [path for day in days for path in files.get((INSTANCES, day), [])]
    rows: dict[str, int] = {}
    if paths:
        rows = dict(
            con.execute(
                "SELECT file_name, num_rows FROM parquet_file_metadata(?)", [paths]
            ).fetchall()
        )
    chunks: list[frozenset[date]] = []
    chunk: list[date] = []
    total = 0
    for day in days:
        count = sum(rows.get(path, 0) for path in files.get((INSTANCES, day), []))
        if chunk and total + count > chunk_rows:
            chunks.append(frozenset(chunk))
            chunk, total = [], 0
        chunk.append(day)
        total += count
    if chunk or not chunks:
        chunks.append(frozenset(chunk))
    return chunks
