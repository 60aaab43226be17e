"""Print, as JSON, the rows of every view of a ``coc.duckdb``, opened read-only.

Run by the compatibility tests with the interpreter of an isolated environment that holds
another DuckDB release (``tests/compat/duckdb-*.txt``), and with the project's own. Only the
standard library and ``duckdb`` (plus ``sqlalchemy`` and ``duckdb-engine`` for ``--engine``)
are imported, so it runs in each of them.

    python dump_views.py PATH [--engine]

Output: ``{"duckdb": version, "views": {name: {"rows": n, "digest": sha256, "sample": [...]}}}``
where the digest is over the view's rows rendered canonically and sorted, so two releases
that answer the same rows print the same digest. Timestamps with a zone are cast to text in
UTC by DuckDB itself (older releases need pytz to hand them to Python).
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

VIEWS_SQL = (
    "SELECT view_name FROM duckdb_views() "
    "WHERE NOT internal AND schema_name = 'main' ORDER BY view_name"
)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select(name: str, columns: list[tuple[str, str]]) -> str:
    parts = []
    for column, kind in columns:
        if "TIME ZONE" in kind.upper():
            parts.append(f"CAST({_quote(column)} AS VARCHAR) AS {_quote(column)}")
        else:
            parts.append(_quote(column))
    return f"SELECT {', '.join(parts)} FROM {_quote(name)}"


def _render(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return sorted((str(k), _render(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_render(v) for v in value]
    if value is None or isinstance(value, (int, str, bool)):
        return value
    return str(value)


def _summary(rows: list[Any]) -> dict[str, Any]:
    rendered = sorted(json.dumps([_render(v) for v in row]) for row in rows)
    digest = hashlib.sha256("\n".join(rendered).encode()).hexdigest()
    return {"rows": len(rendered), "digest": digest, "sample": rendered[:2]}


def dump_duckdb(path: str) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(path, read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    views = [r[0] for r in con.execute(VIEWS_SQL).fetchall()]
    out = {}
    for name in views:
        columns = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {_quote(name)}").fetchall()]
        out[name] = _summary(con.execute(_select(name, columns)).fetchall())
    return {"duckdb": duckdb.__version__, "views": out}


def dump_engine(path: str) -> dict[str, Any]:
    """The same through SQLAlchemy and duckdb-engine, with the URI the README gives Superset."""
    import duckdb
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(f"duckdb:///{path}?access_mode=read_only")
    out = {}
    with engine.connect() as con:
        con.execute(text("SET TimeZone = 'UTC'"))
        try:
            con.execute(text("CREATE TABLE written AS SELECT 1"))
        except Exception:
            pass
        else:
            raise SystemExit("the SQLAlchemy connection could write: not read-only")
        con.rollback()
        names = sorted(inspect(con).get_view_names())
        listed = [r[0] for r in con.execute(text(VIEWS_SQL)).fetchall()]
        if names != listed:
            raise SystemExit(f"SQLAlchemy lists views {names}, DuckDB {listed}")
        for name in names:
            described = con.execute(text(f"DESCRIBE {_quote(name)}")).fetchall()
            columns = [(r[0], r[1]) for r in described]
            out[name] = _summary(list(con.execute(text(_select(name, columns))).fetchall()))
    engine.dispose()
    return {"duckdb": duckdb.__version__, "views": out}


if __name__ == "__main__":
    target = sys.argv[1]
    result = dump_engine(target) if "--engine" in sys.argv[2:] else dump_duckdb(target)
    print(json.dumps(result))
