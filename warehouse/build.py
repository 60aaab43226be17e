"""Build ``coc.duckdb``: views over the Parquet tables, then the marts, incrementally.

The DuckDB file holds views and the marts' computed rows: one view per table over
``<warehouse>/<table>/dt=YYYY-MM-DD/*.parquet`` (Hive partitioning, ``dt`` typed ``DATE``),
the failure-counting macros of ``sql/macros.sql``, and the marts from ``sql/marts/*.sql``
on top (each file opens with a comment whose first paragraph describes the mart), their
rows stored in ``mart_data`` tables that the mart views read. It is written in the storage
format of DuckDB 1.1 (``STORAGE_COMPATIBILITY``), so that the older engines inside BI tools
open it too; its views use absolute paths, so it opens from anywhere.

Incremental: a build recomputes only the days that changed. Per-day SQL (a header line
``-- build: per-day``: the rows of a day depend on that day's partitions only) is stored per
day and its changed days are deleted and recomputed. Every other mart is recomputed whole
from small per-day tables (``sql/parts/*.sql``, per-day themselves, kept in ``mart_data``
only) whose columns merge exactly across days: sums, mins and maxes, arg_max with the key
it chose by, and per-day distinct sets where distinct counts would not add.

Which days changed: those the caller names (the ingest returns its days) and every day whose
files differ from the files the previous build saw (``mart_data.built_files``: the file
names of each day of each table; a publish writes new names), so a day published by a run
whose build failed is picked up by the next one, and a day that lost its files too. A full
rebuild happens when asked (``rebuild=True``: repairs), when there is no previous file, and
when the SQL differs from the one the previous file was built with (``definitions_hash``
over every SQL file, stored in ``mart_data.build_state``).

Copy-on-write: the build works on a copy of the previous file (a new file for a full
rebuild) next to its final place and swaps it in with ``os.replace``, so a BI tool opening
it sees the old database or the new one, readers keep reading during the build, and a
failed build leaves the previous file as it was.

The file belongs to the pipeline. Publishing takes a shared ``fcntl`` lock on the old file
first, the lock DuckDB's own read-only connections take: it cannot be had while a process
holds the file open read-write (DuckDB holds an exclusive lock then), and while it is held no
process can open the file read-write. So the old file's write-ahead log is removed and the
new file swapped in only when no writer can touch either; a live writer fails the build
with a ``WarehouseBusyError`` naming its process, and the file is left as it was. Readers
keep reading (their copy is the old file). Build files left by a killed build
(``coc.duckdb.tmp-<pid>-<thread>`` and its ``.wal``) are removed by the next build once
their process is gone.

The view of a table that has no files yet is a typed empty relation with the same columns,
so the marts and every query keep working on a fresh warehouse. A view is bound to the
files when it is queried, so new days appear in the table views without a build.

On object storage (an ``s3://`` warehouse) a view never globs: listing a prefix can show
a day twice while it is being republished. The build reads every day's manifest once
(``pipelines/day_manifests.py``) and writes each table's view as ``read_parquet([the
objects the manifests name])``, so a reader of the file sees each day as exactly one run
published it. It then records, in the warehouse's ``_manifests/views.json``, which run of
each day the new file names, and deletes the superseded objects no published file can name
any more (after the grace period). Connections read ``s3://`` through our S3 client,
registered on them (``pipelines/objectstore.py``; ``connect`` does it when given the
settings).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import shutil
import struct
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs

from pipelines.day_manifests import ViewsPublished, read_manifests, record_views, sweep_all
from pipelines.objectstore import S3Location, register_s3, s3_filesystem
from pipelines.schemas import TABLES
from pipelines.settings import ObjectStoreSettings

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).parent / "sql"
VIEWS_DIR = SQL_DIR / "views"
MARTS_DIR = SQL_DIR / "marts"
#: per-day figures the all-time marts are merged from; stored in ``mart_data`` only
PARTS_DIR = SQL_DIR / "parts"
#: the failure-counting rule (``counted``, ``failed``, ``failure_rate``), created before the marts
MACROS_SQL = SQL_DIR / "macros.sql"

#: where the marts' computed rows live; the mart views read from here
MART_SCHEMA = "mart_data"
#: the header line of a per-day mart or part
PER_DAY = "-- build: per-day"
#: bumped when the build's own layout of ``mart_data`` changes (forces a full rebuild)
BUILD_FORMAT = "2"

#: The oldest DuckDB storage format the file is written in: DuckDB 1.1 and every later release
#: open it (BI tools lag behind the Python package), see ``tests/bi/test_compat.py``.
STORAGE_COMPATIBILITY = "v1.1.0"

#: Only real partitions: ``dt=2026-11-25``, never ``dt=2026-11-25.tmp`` or ``_staging``.
PARTITION_GLOB = "dt=????-??-??/*.parquet"
_GLOB_CHARACTERS = frozenset("*?[]{}")
#: folders of the kernel, not of data: a DuckDB file there cannot be written
_NOT_DATA = ("/proc", "/sys", "/dev")
_FLOCK = "hhqqi"  # struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid


class BuildError(Exception):
    """The DuckDB file cannot be built or published where it was asked for."""


class WarehouseBusyError(BuildError):
    """Another process holds the DuckDB file open read-write."""


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    """What a build created: table views, marts, and the row count of each table."""

    duckdb_path: str
    tables: tuple[str, ...]
    marts: tuple[str, ...]
    rows: Mapping[str, int]
    empty_tables: tuple[str, ...]
    #: True when every mart was recomputed over all days, False when only changed days were
    full: bool = field(default=True, compare=False)
    #: why a full rebuild happened ("asked", "no previous file", "definitions changed"), or ""
    full_reason: str = field(default="", compare=False)
    #: the days recomputed by an incremental build (empty for a full one)
    changed_days: tuple[date, ...] = field(default=(), compare=False)
    #: seconds each mart took to compute and store
    mart_seconds: Mapping[str, float] = field(default_factory=dict, compare=False)
    #: seconds spent copying the previous file (incremental builds)
    copy_seconds: float = field(default=0.0, compare=False)

    @property
    def views(self) -> tuple[str, ...]:
        return self.tables + self.marts


def connect(
    duckdb_path: str | os.PathLike[str],
    read_only: bool = True,
    *,
    object_store: ObjectStoreSettings | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse's DuckDB file (read-only unless asked otherwise); with
    ``object_store``, its views over an ``s3://`` warehouse can be read."""
    con = duckdb.connect(os.fspath(duckdb_path), read_only=read_only)
    if object_store is not None:
        register_s3(con, object_store)
    return con


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


def build_warehouse(
    *,
    warehouse: str,
    duckdb_path: str,
    object_store: ObjectStoreSettings | None = None,
    changed_days: Iterable[date] = (),
    rebuild: bool = False,
) -> BuildResult:
    """(Re)build the DuckDB file at ``duckdb_path`` over the Parquet under ``warehouse``.

    An ``s3://`` warehouse needs ``object_store``, the settings to reach it.
    ``changed_days``: days a run just wrote (recomputed even if their files look unchanged);
    ``rebuild``: recompute every day (a repair). See the module docstring.
    """
    sources: dict[str, str | list[str]]
    published: tuple[pafs.FileSystem, S3Location, dict[str, str], float] | None = None
    if warehouse.startswith("s3://"):
        if object_store is None:
            raise ValueError(f"building over {warehouse} needs the object-storage settings")
        location = S3Location.parse(warehouse)
        fs = s3_filesystem(object_store)
        manifests = read_manifests(fs, location.path)
        runs = {day.isoformat(): m.run_id for day, m in sorted(manifests.items())}
        sources = {
            table: [
                f"{location.uri}/{path}"
                for _, m in sorted(manifests.items())
                for path in m.tables.get(table, [])
            ]
            for table in TABLES
        }
        published = (fs, location, runs, object_store.retire_grace_s)
    else:
        root = _warehouse_root(warehouse)
        sources = {table: table_glob(root, table) for table in TABLES}
    target = check_build_target(duckdb_path)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    remove_debris(target)
    _remove_database(tmp)
    wanted = definitions_hash()
    reason = "asked" if rebuild else _full_rebuild_reason(target, wanted)
    copy_seconds = 0.0
    try:
        if not reason:
            started = time.perf_counter()
            shutil.copyfile(target, tmp)
            copy_seconds = time.perf_counter() - started
        con = duckdb.connect(
            str(tmp), config={"storage_compatibility_version": STORAGE_COMPATIBILITY}
        )
        try:
            if object_store is not None:
                register_s3(con, object_store)
            con.execute(MACROS_SQL.read_text())
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {MART_SCHEMA}")
            files = _day_files(con, sources)
            days: frozenset[date] | None = None
            if not reason:
                days = _changed_days(con, files) | frozenset(changed_days)
            # The per-day SQL runs over table views of the changed days' files only, so it
            # reads nothing else whatever its shape (a CTE read twice, GROUPING SETS).
            for table in TABLES:
                _create_table_view(con, table, _files_of(table, files, days, sources))
            mart_seconds: dict[str, float] = {}
            for path in sorted(PARTS_DIR.glob("*.sql")):
                _store_per_day(con, path, days, mart_seconds, view=False)
            per_day = [path for path in _mart_files() if _is_per_day(path)]
            names = [_create_mart(con, path, days, mart_seconds) for path in per_day]
            empty = tuple(t for t in TABLES if not _create_table_view(con, t, sources[t]))
            names += [
                _create_mart(con, path, days, mart_seconds)
                for path in _mart_files()
                if not _is_per_day(path)
            ]
            marts = tuple(sorted(names))
            rows = _record_state(con, files, days, wanted)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        _publish(tmp, target)
    finally:
        _remove_database(tmp)
    if published is not None:
        _views_published(*published)
    return BuildResult(
        duckdb_path=str(target),
        tables=tuple(TABLES),
        marts=marts,
        rows=rows,
        empty_tables=empty,
        full=days is None,
        full_reason=reason,
        changed_days=tuple(sorted(days or ())),
        mart_seconds=mart_seconds,
        copy_seconds=copy_seconds,
    )


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


def check_build_target(duckdb_path: str) -> Path:
    """The DuckDB file's path, once it is known the build can publish there.

    Checked before a run fetches anything: the path is not a folder, not under ``/proc``,
    ``/sys`` or ``/dev``, its folder exists (it is created) and takes new files, and no
    process holds the current file open read-write.
    """
    target = Path(duckdb_path).expanduser().resolve()
    if any(target == Path(d) or Path(d) in target.parents for d in _NOT_DATA):
        raise BuildError(f"COC_DUCKDB={duckdb_path!r} is under {target.parts[1]}: not for data")
    if target.is_dir():
        raise BuildError(
            f"COC_DUCKDB={duckdb_path!r} is a folder; name a file, e.g. {target / 'coc.duckdb'}"
        )
    if target.exists() and not target.is_file():
        raise BuildError(f"COC_DUCKDB={duckdb_path!r} exists and is not a regular file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe = target.with_name(f".{target.name}.probe-{os.getpid()}")
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise BuildError(
            f"COC_DUCKDB={duckdb_path!r}: cannot create files in {target.parent} "
            f"({exc.strerror or exc})"
        ) from None
    writer = _writer_pid(target)
    if writer is not None:
        raise _busy(target, writer)
    return target


def remove_debris(target: Path) -> list[Path]:
    """Remove the build files (``<name>.tmp-<pid>-<thread>``, ``.wal``) of dead processes."""
    pattern = re.compile(re.escape(target.name) + r"\.tmp-(\d+)-\d+(\.wal)?$")
    removed = []
    for path in target.parent.glob(f"{target.name}.tmp-*"):
        found = pattern.match(path.name)
        if found is None or _alive(int(found.group(1))):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, alive
        return True
    return True


def _publish(tmp: Path, target: Path) -> None:
    """Swap ``tmp`` in at ``target`` while no process can write the old file."""
    try:
        fd = os.open(target, os.O_RDONLY)
    except FileNotFoundError:
        fd = None
    try:
        if fd is not None:
            try:
                fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack(_FLOCK, fcntl.F_RDLCK, 0, 0, 0, 0))
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                raise _busy(target, _writer_pid(target)) from None
        # No writer can hold the old file now: a write-ahead log beside it is a crashed
        # writer's, and would be replayed against the new file. Drop it, then swap.
        Path(f"{target}.wal").unlink(missing_ok=True)
        os.replace(tmp, target)
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _writer_pid(target: Path) -> int | None:
    """The process holding ``target`` open read-write (an exclusive lock), or None."""
    try:
        fd = os.open(target, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        probe = struct.pack(_FLOCK, fcntl.F_RDLCK, 0, 0, 0, 0)
        l_type, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, probe))
    finally:
        os.close(fd)
    return None if l_type == fcntl.F_UNLCK else pid


def _busy(target: Path, pid: int | None) -> WarehouseBusyError:
    who = f"process {pid}" if pid else "another process"
    return WarehouseBusyError(
        f"{target} is open read-write by {who}: the file belongs to the pipeline, which "
        "replaces it at every build; close that connection (keep your own tables in your "
        "own DuckDB file that ATTACHes this one read-only) and build again"
    )


def _views_published(
    fs: pafs.FileSystem, location: S3Location, runs: dict[str, str], grace_s: float
) -> None:
    """Record which run of each day the new file names; delete what no published file can.

    The file is out already: a failure here is logged, and the next build does it.
    """
    try:
        published = ViewsPublished(published_at=time.time(), runs=runs)
        record_views(fs, location.path, published, grace_s=grace_s)
        gone = sweep_all(fs, location.path, grace_s=grace_s)
    except (OSError, ValueError) as exc:
        log.warning("views of %s not recorded, nothing swept: %s", location.uri, exc)
        return
    if gone:
        log.info("deleted %d superseded objects under %s", gone, location.uri)


def table_glob(root: str, table: str) -> str:
    """The glob of a table's Parquet files under a warehouse root."""
    return f"{root}/{table}/{PARTITION_GLOB}"


def _warehouse_root(warehouse: str) -> str:
    """A local warehouse root as DuckDB should see it: an absolute path without glob
    characters (``s3://`` warehouses are read through their manifests instead)."""
    if "://" in warehouse:
        scheme = warehouse.split("://", 1)[0]
        raise ValueError(f"the DuckDB build reads local folders and s3:// URIs, not {scheme}://")
    root = Path(warehouse).expanduser().resolve().as_posix()
    if _GLOB_CHARACTERS & set(root):
        raise BuildError(f"COC_WAREHOUSE must not contain glob characters (*?[]{{}}): {root!r}")
    return root


def _files_of(
    table: str,
    files: Mapping[tuple[str, date], list[str]],
    days: frozenset[date] | None,
    sources: Mapping[str, str | list[str]],
) -> str | list[str]:
    """``table``'s files on ``days`` (None: every day, its glob or list of objects)."""
    if days is None:
        return sources[table]
    return [path for day in sorted(days) for path in files.get((table, day), [])]


def _create_table_view(con: duckdb.DuckDBPyConnection, table: str, files: str | list[str]) -> bool:
    """Create the view of one table over ``files``, a glob or the list of its objects;
    whether it has files (else it is a typed empty view)."""
    schema = TABLES[table]
    if isinstance(files, str):
        has_files = scalar(con, "SELECT count(*) > 0 FROM glob(?)", [files])
        named = _literal(files)
    else:
        has_files = bool(files)
        named = "[" + ", ".join(_literal(f) for f in files) + "]"
    if has_files:
        source = f"read_parquet({named}, hive_partitioning = true, hive_types = {{'dt': DATE}})"
    else:
        source = _empty_relation(con, schema)
    template = (VIEWS_DIR / f"{table}.sql").read_text()
    con.execute(
        _fill(template, columns=", ".join(_identifier(n) for n in schema.names), source=source)
    )
    return bool(has_files)


def _mart_files() -> list[Path]:
    """The marts in build order: per-day ones first, then those merged over every day (which
    may read the per-day ones' tables)."""
    paths = sorted(MARTS_DIR.glob("*.sql"))
    return [p for p in paths if _is_per_day(p)] + [p for p in paths if not _is_per_day(p)]


def _is_per_day(path: Path) -> bool:
    return any(line.strip() == PER_DAY for line in path.read_text(encoding="utf-8").splitlines())


def _create_mart(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    days: frozenset[date] | None,
    seconds: dict[str, float],
) -> str:
    """Compute one mart into ``mart_data.<name>``; its view becomes ``SELECT *`` of that table.

    Dashboards read a small table instead of aggregating every instance on each refresh; the
    build runs after every materialization, so a mart is as fresh as the Parquet.
    """
    if _is_per_day(path):
        return _store_per_day(con, path, days, seconds, view=True)
    started = time.perf_counter()
    name = _run_definition(con, path)
    stored = f"{MART_SCHEMA}.{_identifier(name)}"
    con.execute(f"CREATE OR REPLACE TABLE {stored} AS SELECT * FROM {_identifier(name)}")
    con.execute(f"CREATE OR REPLACE VIEW {_identifier(name)} AS SELECT * FROM {stored}")
    seconds[name] = time.perf_counter() - started
    return name


def _store_per_day(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    days: frozenset[date] | None,
    seconds: dict[str, float],
    *,
    view: bool,
) -> str:
    """Store a per-day definition's rows: every day (``days`` None), else replace those days'.

    With ``view`` the name then becomes a view of the stored rows (a mart); without, the
    computing view is dropped and the rows live in ``mart_data`` only (a part).
    """
    if not _is_per_day(path):
        raise ValueError(f"{path} must declare itself per-day with the line {PER_DAY!r}")
    started = time.perf_counter()
    name = _run_definition(con, path)
    stored = f"{MART_SCHEMA}.{_identifier(name)}"
    if days is None:
        con.execute(f"CREATE OR REPLACE TABLE {stored} AS SELECT * FROM {_identifier(name)}")
    elif days:
        # literal dates, so that DuckDB prunes the Hive partitions to the changed days
        listed = ", ".join(f"DATE '{day.isoformat()}'" for day in sorted(days))
        con.execute(f"DELETE FROM {stored} WHERE dt IN ({listed})")
        con.execute(
            f"INSERT INTO {stored} SELECT * FROM {_identifier(name)} WHERE dt IN ({listed})"
        )
    if view:
        con.execute(f"CREATE OR REPLACE VIEW {_identifier(name)} AS SELECT * FROM {stored}")
    else:
        con.execute(f"DROP VIEW {_identifier(name)}")
    seconds[name] = time.perf_counter() - started
    return name


def _run_definition(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """Run one SQL file; it must create the view named like the file."""
    con.execute(path.read_text())
    name = path.stem
    found = scalar(
        con, "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal", [name]
    )
    if not found:
        raise ValueError(f"{path} must create the view {name}")
    return name


def _full_rebuild_reason(target: Path, wanted: str) -> str:
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


def _day_files(
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


def _changed_days(
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


def _record_state(
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
            listed = ", ".join(f"DATE '{day.isoformat()}'" for day in sorted(days))
            counts = dict(
                con.execute(
                    f"SELECT dt, count(*) FROM {_identifier(table)} "
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


def _empty_relation(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> str:
    """A zero-row relation with the table's columns and DuckDB types, then ``dt DATE``.

    The types are those DuckDB gives the Arrow schema, which are the ones it reads back from
    the Parquet files (a test checks that the two agree).
    """
    types = con.from_arrow(schema.empty_table()).types
    columns = [
        f"CAST(NULL AS {duckdb_type}) AS {_identifier(name)}"
        for name, duckdb_type in zip(schema.names, types, strict=True)
    ]
    columns.append("CAST(NULL AS DATE) AS dt")
    return "(SELECT " + ", ".join(columns) + " WHERE false)"


def _fill(template: str, **values: str) -> str:
    """Replace each ``{name}`` placeholder; every one must be present."""
    for name, value in values.items():
        placeholder = "{" + name + "}"
        if placeholder not in template:
            raise ValueError(f"view template lacks the placeholder {placeholder}")
        template = template.replace(placeholder, value)
    return template


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _remove_database(path: Path) -> None:
    path.unlink(missing_ok=True)
    Path(f"{path}.wal").unlink(missing_ok=True)
