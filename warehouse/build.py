"""Build ``coc.duckdb``: views over the Parquet tables, then the marts.

The DuckDB file holds no data, only SQL: one view per table over
``<warehouse>/<table>/dt=YYYY-MM-DD/*.parquet`` (Hive partitioning, ``dt`` typed ``DATE``),
the failure-counting macros of ``sql/macros.sql``, and the marts from ``sql/marts/*.sql``
on top (each file opens with a comment whose first paragraph describes the mart).
Rebuilding it is therefore cheap, and the build is idempotent: the file is written next to
its final place and swapped in with ``os.replace``, so a BI tool opening it sees either the
old database or the new one. It is written in the storage format of DuckDB 1.1
(``STORAGE_COMPATIBILITY``), so that the older engines inside BI tools open it too; its
views use absolute paths, so it opens from anywhere.

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
files when it is queried, so new days appear without a rebuild; a table that was empty at
build time appears at the next build (the pipeline rebuilds after every materialization).

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
import logging
import os
import re
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
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
#: the failure-counting rule (``counted``, ``failed``, ``failure_rate``), created before the marts
MACROS_SQL = SQL_DIR / "macros.sql"

#: where the marts' computed rows live; the mart views read from here
MART_SCHEMA = "mart_data"

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
    #: seconds each mart took to compute and store
    mart_seconds: Mapping[str, float] = field(default_factory=dict, compare=False)

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


def build_warehouse(
    *, warehouse: str, duckdb_path: str, object_store: ObjectStoreSettings | None = None
) -> BuildResult:
    """(Re)create the DuckDB file at ``duckdb_path`` over the Parquet under ``warehouse``.

    An ``s3://`` warehouse needs ``object_store``, the settings to reach it.
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
    try:
        con = duckdb.connect(
            str(tmp), config={"storage_compatibility_version": STORAGE_COMPATIBILITY}
        )
        try:
            if object_store is not None:
                register_s3(con, object_store)
            empty = tuple(t for t in TABLES if not _create_table_view(con, t, sources[t]))
            con.execute(MACROS_SQL.read_text())
            mart_seconds: dict[str, float] = {}
            marts = tuple(
                _create_mart(con, path, mart_seconds) for path in sorted(MARTS_DIR.glob("*.sql"))
            )
            rows = {
                table: scalar(con, f"SELECT count(*) FROM {_identifier(table)}") for table in TABLES
            }
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
        mart_seconds=mart_seconds,
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


def _create_mart(con: duckdb.DuckDBPyConnection, path: Path, seconds: dict[str, float]) -> str:
    """Run one mart file (it must create the view named like the file), then materialize it.

    The mart's rows are computed once here, into ``mart_data.<name>``, and the view becomes
    ``SELECT * FROM mart_data.<name>``: dashboards read a small table instead of aggregating
    every instance on each refresh. The build runs after every materialization, so a mart is
    as fresh as the Parquet it was computed from.
    """
    started = time.perf_counter()
    con.execute(path.read_text())
    name = path.stem
    found = scalar(
        con, "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal", [name]
    )
    if not found:
        raise ValueError(f"{path} must create the view {name}")
    stored = f"{MART_SCHEMA}.{_identifier(name)}"
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {MART_SCHEMA}")
    con.execute(f"CREATE TABLE {stored} AS SELECT * FROM {_identifier(name)}")
    con.execute(f"CREATE OR REPLACE VIEW {_identifier(name)} AS SELECT * FROM {stored}")
    seconds[name] = time.perf_counter() - started
    return name


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
