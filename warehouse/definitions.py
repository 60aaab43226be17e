"""The build's SQL files: where they live, running one, and the helpers that write SQL.

``sql/views/*.sql`` are the table views' templates, ``sql/macros.sql`` the failure-counting
rule, ``sql/parts/*.sql`` per-day figures kept in ``mart_data`` only, ``sql/rollups/*.sql``
those figures merged per month (also in ``mart_data`` only), ``sql/marts/*.sql`` the marts.
How each part, rollup and mart is rebuilt is declared in ``marts.py``, not in its file: a
file holds its SQL and a comment describing it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from warehouse.marts import MODELS, Model

SQL_DIR = Path(__file__).parent / "sql"

VIEWS_DIR = SQL_DIR / "views"

MARTS_DIR = SQL_DIR / "marts"

#: per-day figures the all-time marts are merged from; stored in ``mart_data`` only
PARTS_DIR = SQL_DIR / "parts"
#: the parts merged per month, which the all-time marts merge; stored in ``mart_data`` only
ROLLUPS_DIR = SQL_DIR / "rollups"

#: the failure-counting rule (``counted``, ``failed``, ``failure_rate``), created before the marts
MACROS_SQL = SQL_DIR / "macros.sql"

#: where the marts' computed rows live; the mart views read from here
MART_SCHEMA = "mart_data"

#: the macro a trailing mart or a rollup filters the parts it reads with: ``build_window(dt)``,
#: defined by the build before it runs the SQL (``trailing.py``, ``build.store_rollups``)
WINDOW_MACRO = "build_window"
#: bumped when the build's own layout of ``mart_data`` changes (forces a full rebuild)
BUILD_FORMAT = "2"


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The single value a one-row query answers."""
    row = con.execute(sql, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from a one-row query: {sql}")
    return row[0]


def definitions_hash() -> str:
    """A hash of every SQL file of the build (views, macros, parts, marts), of the registry
    (how each is rebuilt) and of the build's format: a file built with other definitions is
    rebuilt in full."""
    digest = hashlib.sha256(BUILD_FORMAT.encode())
    digest.update(repr(MODELS).encode() + b"\0")
    for path in sorted(SQL_DIR.rglob("*.sql")):
        digest.update(path.relative_to(SQL_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def mart_description(path: Path) -> str:
    """A mart's description: the first paragraph of its file's header comment, without the
    leading ``<name>:``."""
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("--") or not line[2:].strip():
            break
        lines.append(line[2:].strip())
    text = " ".join(lines)
    prefix = f"{path.stem}:"
    text = text[len(prefix) :].strip() if text.startswith(prefix) else text
    if not text:
        raise ValueError(f"{path} must open with a comment describing the mart")
    return text[0].upper() + text[1:]


def sql_path(model: Model) -> Path:
    """The SQL file of a registered model."""
    return SQL_DIR / model.stage.value / f"{model.name}.sql"


def windowed(path: Path) -> Path:
    """``path``, after checking that its SQL reads what it merges through ``build_window``
    (a rollup or a trailing mart that did not would read every day at every build; the
    registry says which must: ``Model.windowed``)."""
    if f"{WINDOW_MACRO}(" not in path.read_text(encoding="utf-8"):
        raise ValueError(f"{path} must filter the rows it reads with {WINDOW_MACRO}(dt)")
    return path


def run_definition(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """Run one SQL file; it must create the view named like the file."""
    con.execute(path.read_text())
    name = path.stem
    found = scalar(
        con, "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal", [name]
    )
    if not found:
        raise ValueError(f"{path} must create the view {name}")
    return name


def fill(template: str, **values: str) -> str:
    """Replace each ``{name}`` placeholder; every one must be present."""
    for name, value in values.items():
        placeholder = "{" + name + "}"
        if placeholder not in template:
            raise ValueError(f"view template lacks the placeholder {placeholder}")
        template = template.replace(placeholder, value)
    return template


def dates_sql(days: Iterable[date]) -> str:
    """``days`` as DuckDB date literals, sorted, comma-separated: filters on literal dates
    prune Hive partitions and row groups."""
    return ", ".join(f"DATE '{day.isoformat()}'" for day in sorted(days))


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
