"""Reading a built ``coc.duckdb`` back in tests: one query on a connection of its own."""

from __future__ import annotations

from pathlib import Path

from warehouse import connect


def query(duckdb_path: str | Path, sql: str, params: list | None = None) -> list[tuple]:
    """All rows of ``sql`` from the file, on a read connection closed afterwards."""
    con = connect(duckdb_path)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()
