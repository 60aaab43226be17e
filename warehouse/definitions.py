"""The build's SQL files: where they live, what their headers declare, running one.

``sql/views/*.sql`` are the table views' templates, ``sql/macros.sql`` the failure-counting
rule, ``sql/parts/*.sql`` per-day figures kept in ``mart_data`` only, ``sql/rollups/*.sql``
those figures merged per month (also in ``mart_data`` only), ``sql/marts/*.sql`` the marts.
A header line says what a file's rows depend on: ``-- build: per-day``, a day's rows on that
day's partitions only; ``-- build: per-month``, a month's rows (``dt`` its first day) on that
month's days of a part only, which it reads through ``build_window(dt)``; ``-- build: tally
of <rollup>``, the months of a rollup in which each of its keys appears (``store.py``);
``-- build: trailing N``, a day's rows on the per-day parts of that day and the N days before
it (``trailing.py``), and ``-- build: episodes``, its alerts followed as episodes
(``episodes.py``). Every other mart is merged whole from the parts, rollups and tallies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

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

#: the header line of a per-day mart or part
PER_DAY = "-- build: per-day"
#: the header line of a rollup: its rows of a month (``dt``, the month's first day) depend on
#: that month's days of a part only
PER_MONTH = "-- build: per-month"
#: the header line of a mart that reads another mart's stored rows: ``-- build: after <mart>``
AFTER = "-- build: after "
#: the header line of a mart whose day depends on the N days before it: ``-- build: trailing N``
TRAILING = "-- build: trailing "
#: the header line of a trailing mart whose ``alert`` and ``since`` follow episodes
#: (``episodes.py``)
EPISODES = "-- build: episodes"
#: the header line of a tally: ``-- build: tally of <rollup>`` (``store.py``)
TALLY = "-- build: tally of "
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
    """A hash of every SQL file of the build (views, macros, parts, marts) and its format:
    a file built with other definitions is rebuilt in full."""
    digest = hashlib.sha256(BUILD_FORMAT.encode())
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


def mart_files() -> list[Path]:
    """The marts in build order: per-day ones first, then those merged over every day (which
    may read the per-day ones' tables); a mart declaring ``-- build: after <mart>`` (it reads
    that mart's stored rows) comes after it."""
    paths = sorted(MARTS_DIR.glob("*.sql"))
    ordered = [p for p in paths if is_per_day(p)] + [p for p in paths if not is_per_day(p)]
    placed: list[Path] = []
    while ordered:
        done = {p.stem for p in placed}
        ready = next((p for p in ordered if built_after(p) <= done), None)
        if ready is None:
            raise ValueError(f"marts that wait on each other: {[p.name for p in ordered]}")
        placed.append(ready)
        ordered.remove(ready)
    return placed


def built_after(path: Path) -> set[str]:
    """The marts a ``-- build: after <mart>`` line of ``path`` names."""
    return set(_headers(path, AFTER))


def is_per_day(path: Path) -> bool:
    return PER_DAY in _headers(path, "")


def tracks_episodes(path: Path) -> bool:
    return EPISODES in _headers(path, "")


def is_per_month(path: Path) -> bool:
    return PER_MONTH in _headers(path, "")


def tally_of(path: Path) -> str:
    """The rollup a ``-- build: tally of <rollup>`` header line of ``path`` names, or ""."""
    return next(iter(_headers(path, TALLY)), "")


def trailing_days(path: Path) -> int | None:
    """N of a ``-- build: trailing N`` header line, or None."""
    found = _headers(path, TRAILING)
    return int(found[0]) if found else None


def _headers(path: Path, prefix: str) -> list[str]:
    """What follows ``prefix`` on each of ``path``'s lines that start with it, stripped."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line[len(prefix) :].strip() for line in lines if line.startswith(prefix)]


def windowed(path: Path) -> Path:
    """``path``, after checking that its SQL reads what it merges through ``build_window``
    (a rollup or a trailing mart that did not would read every day at every build)."""
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
