"""Every view of a ``coc.duckdb``, read as rows that compare across builds and runs."""

from __future__ import annotations

import duckdb


def view_rows(
    con: duckdb.DuckDBPyConnection, *, leave_out: tuple[str, ...] = ()
) -> dict[str, list[tuple]]:
    """Each view's rows (tables and marts), every value as text, in a stable order; the
    columns named in ``leave_out`` are left out (a run's own ids, say)."""
    names = [
        r[0]
        for r in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
        ).fetchall()
    ]
    out = {}
    for name in names:
        columns = [c[0] for c in con.execute(f'DESCRIBE "{name}"').fetchall()]
        plain = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in columns if c not in leave_out)
        out[name] = con.execute(f'SELECT {plain} FROM "{name}" ORDER BY ALL').fetchall()
    return out
