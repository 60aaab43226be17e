"""Which days a build recomputes: the files each day had at the previous build, and now.

Changed days are those the caller names (the ingest returns its days) and every day whose
files differ from the files the previous build saw (``mart_data.built_files``: the file
names of each day of each table; a publish writes new names), so a day published by a run
whose build failed is picked up by the next one, and a day that lost its files too. A full
rebuild happens when asked (``rebuild=True``: repairs), when there is no previous file, and
when the SQL differs from the one the previous file was built with (``definitions_hash``
over every SQL file, stored in ``mart_data.build_state``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date
from pathlib import Path

import duckdb

from pipelines.schemas import TABLES
from warehouse.definitions import MART_SCHEMA, dates_sql, identifier, scalar


def full_rebuild_reason(target: Path, wanted: str) -> str:
    """Why the file at ``target`` cannot be updated in place of a full rebuild, or ""."""
    if not target.exists():
        return "no previous file"
    if Path(f"{target}.wal").exists():
        return "the previous file has a write-ahead log (a writer crashed)"
    try:
        con = duckdb.connect(str(target), read_only=True)
    except duckdb.Error:
        return "the previous file does not open"
    try:
        row = con.execute(
            f"SELECT value FROM {MART_SCHEMA}.build_state WHERE key = 'definitions'"
        ).fetchone()
    except duckdb.CatalogException:
        row = None
    finally:
        con.close()
    if row is None or row[0] != wanted:
        return "definitions changed"
    return ""


def day_files(
    con: duckdb.DuckDBPyConnection, sources: Mapping[str, str | list[str]]
) -> dict[tuple[str, date], list[str]]:
    """The files of each (table, day), from each table's glob or list of objects: what
    changes when a day is published (a run writes new names)."""
    found: dict[tuple[str, date], list[str]] = {}
    for table in TABLES:
        source = sources[table]
        if isinstance(source, str):
            paths = [
                str(f) for (f,) in con.execute("SELECT file FROM glob(?)", [source]).fetchall()
            ]
        else:
            paths = list(source)
        for path in paths:
            folder = path.rsplit("/", 2)[-2]
            found.setdefault((table, date.fromisoformat(folder[3:])), []).append(path)
    return {key: sorted(paths) for key, paths in found.items()}


def changed_days(
    con: duckdb.DuckDBPyConnection, files: Mapping[tuple[str, date], list[str]]
) -> frozenset[date]:
    """Days whose files differ from those the previous build recorded (new, changed, gone)."""
    before = {
        (table, day): names
        for table, day, names in con.execute(
            f"SELECT table_name, dt, files FROM {MART_SCHEMA}.built_files"
        ).fetchall()
    }
    now = {key: "\n".join(paths) for key, paths in files.items()}
    keys = before.keys() | now.keys()
    return frozenset(
        day for table, day in keys if before.get((table, day)) != now.get((table, day))
    )


def record_state(
    con: duckdb.DuckDBPyConnection,
    files: Mapping[tuple[str, date], list[str]],
    days: Collection[date] | None,
    definitions: str,
) -> dict[str, int]:
    """Record what this build saw (each day's files and rows) and its definitions; returns
    the rows of each table, counted for the recomputed days only."""
    built = f"{MART_SCHEMA}.built_files"
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {built} "
        "(table_name VARCHAR, dt DATE, files VARCHAR, row_count BIGINT)"
    )
    con.execute(
        f"CREATE OR REPLACE TABLE {MART_SCHEMA}.build_state AS "
        "SELECT 'definitions' AS key, ? AS value",
        [definitions],
    )
    if days is None:
        con.execute(f"DELETE FROM {built}")
        days = {day for _, day in files}
    for table in TABLES:
        counts: dict[date, int] = {}
        if days:
            listed = dates_sql(days)
            counts = dict(
                con.execute(
                    f"SELECT dt, count(*) FROM {identifier(table)} "
                    f"WHERE dt IN ({listed}) GROUP BY dt"
                ).fetchall()
            )
        con.execute(
            f"DELETE FROM {built} WHERE table_name = ? AND dt = ANY(?)", [table, list(days)]
        )
        recorded = [
            (table, day, "\n".join(files[(table, day)]), counts.get(day, 0))
            for day in days
            if (table, day) in files
        ]
        if recorded:
            con.executemany(f"INSERT INTO {built} VALUES (?, ?, ?, ?)", recorded)
    return {
        table: int(
            scalar(
                con,
                f"SELECT coalesce(sum(row_count), 0) FROM {built} WHERE table_name = ?",
                [table],
            )
        )
        for table in TABLES
    }
