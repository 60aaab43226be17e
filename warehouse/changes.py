"""Which days a build recomputes: what each day's log entries were at the previous build, and now.

Changed days are those the caller names (the ingest returns its days) and every day whose
signature differs from the one the previous build saw (``mart_data.built_files``: per day of
each table, the Delta log's add actions of the pinned version, each file's path, size and
modification time: ``pipelines/lake/tables.py``). A commit always changes them, so a day published
by a run whose build failed is picked up by the next one, a day that lost its files too, and
a day restored with the same file names but other content as well (its add actions carry
another time and size). The versions the file pins are kept in
``mart_data.pinned_versions``: the vacuum keeps their files while the file is published. A full
rebuild happens when asked (``rebuild=True``: repairs), when there is no previous file, and
when the SQL differs from the one the previous file was built with (``definitions_hash``
over every SQL file, stored in ``mart_data.build_state``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date
from pathlib import Path

import duckdb

from pipelines.transform.schemas import TABLES
from warehouse.definitions import MART_SCHEMA, dates_sql, identifier, scalar
from warehouse.pinning import Pinned


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


def previous_versions(target: Path) -> dict[str, set[int]]:
    """The table versions the published file at ``target`` names (none if unreadable)."""
    if not target.exists():
        return {}
    try:
        con = duckdb.connect(str(target), read_only=True)
    except duckdb.Error:
        return {}
    try:
        rows = con.execute(
            f"SELECT table_name, version FROM {MART_SCHEMA}.pinned_versions"
        ).fetchall()
    except duckdb.Error:
        rows = []
    finally:
        con.close()
    found: dict[str, set[int]] = {}
    for table, version in rows:
        found.setdefault(str(table), set()).add(int(version))
    return found


def changed_days(
    con: duckdb.DuckDBPyConnection, signatures: Mapping[tuple[str, date], str]
) -> frozenset[date]:
    """Days whose signatures differ from those the previous build recorded (new, changed,
    gone)."""
    before = {
        (table, day): names
        for table, day, names in con.execute(
            f"SELECT table_name, dt, files FROM {MART_SCHEMA}.built_files"
        ).fetchall()
    }
    now = dict(signatures)
    keys = before.keys() | now.keys()
    return frozenset(
        day for table, day in keys if before.get((table, day)) != now.get((table, day))
    )


def record_state(
    con: duckdb.DuckDBPyConnection,
    pinned: Pinned,
    days: Collection[date] | None,
    definitions: str,
) -> dict[str, int]:
    """Record what this build saw (each day's signature and rows, the pinned versions) and
    its definitions; returns the rows of each table, counted for the recomputed days only."""
    signatures = pinned.signatures
    con.execute(
        f"CREATE OR REPLACE TABLE {MART_SCHEMA}.pinned_versions "
        "(table_name VARCHAR, version BIGINT)"
    )
    named = [(t, v) for t, versions in pinned.named_versions.items() for v in sorted(versions)]
    if named:
        con.executemany(f"INSERT INTO {MART_SCHEMA}.pinned_versions VALUES (?, ?)", named)
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
        days = {day for _, day in signatures}
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
            (table, day, signatures[(table, day)], counts.get(day, 0))
            for day in days
            if (table, day) in signatures
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
