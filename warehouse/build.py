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
day and its changed days are deleted and recomputed, a group of days at a time (at most
``CHUNK_ROWS`` instances, so that a full rebuild of a long history needs the memory of one
group). Every other mart is recomputed whole from small per-day tables (``sql/parts/*.sql``,
per-day themselves, kept in ``mart_data`` only) whose columns merge exactly across days:
sums, mins and maxes, arg_max with the key it chose by, and per-day distinct sets where
distinct counts would not add; merged first per month (``sql/rollups/*.sql``, recomputed for
the changed months from those months' parts only), so that the all-time marts merge a few
rows per key and month, and distinct sets tallied over every month by difference (the
all-time distinct hosts of a message pattern): ``store.py``.

Which days changed, and when a build is a full rebuild instead: ``changes.py``. Marts whose
day depends on the days before it (``-- build: trailing N``, ``failure_shifts``) are
recomputed for the changed days and the N days after each: ``trailing.py``. The file is
built on a copy and swapped in (copy-on-write, readers keep reading, a failed build leaves
the previous file as it was): ``publish.py``. A day republished by another run while the
build reads it (a local republish deletes the old files at once) makes the build list the
files again and start over, up to ``BUILD_ATTEMPTS`` times. The SQL files and their headers:
``definitions.py``.

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

import logging
import os
import shutil
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs

from pipelines.day_manifests import ViewsPublished, read_manifests, record_views, sweep_all
from pipelines.objectstore import S3Location, register_s3, s3_filesystem
from pipelines.schemas import DRIFT_TABLES, TABLES
from pipelines.settings import ObjectStoreSettings, WarehouseSettings
from pipelines.shared_lock import build_lock
from warehouse.changes import changed_days as _changed_days
from warehouse.changes import day_files, full_rebuild_reason, record_state
from warehouse.definitions import (
    MACROS_SQL,
    MART_SCHEMA,
    MARTS_DIR,
    PARTS_DIR,
    VIEWS_DIR,
    definitions_hash,
    fill,
    identifier,
    is_per_day,
    literal,
    mart_description,
    mart_files,
    run_definition,
    scalar,
    trailing_days,
)
from warehouse.publish import (
    BuildError,
    WarehouseBusyError,
    check_build_target,
    publish,
    remove_database,
    remove_debris,
)
from warehouse.store import CHUNK_ROWS, day_chunks, store_per_day, store_rollups
from warehouse.trailing import store_trailing

__all__ = [
    "MARTS_DIR",
    "BuildError",
    "BuildResult",
    "WarehouseBusyError",
    "build_locked",
    "build_warehouse",
    "check_build_target",
    "connect",
    "mart_description",
    "scalar",
]

log = logging.getLogger(__name__)

#: The oldest DuckDB storage format the file is written in: DuckDB 1.1 and every later release
#: open it (BI tools lag behind the Python package), see ``tests/bi/test_compat.py``.
STORAGE_COMPATIBILITY = "v1.1.0"

#: Only real partitions: ``dt=2026-11-25``, never ``dt=2026-11-25.tmp`` or ``_staging``.
PARTITION_GLOB = "dt=????-??-??/*.parquet"

_GLOB_CHARACTERS = frozenset("*?[]{}")

#: How many times a build starts over when a day it was reading is republished meanwhile (a
#: local republish deletes the old files at once); each attempt lists the files again.
BUILD_ATTEMPTS = 5


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
    #: the groups of days the per-day SQL ran over, one at a time (``CHUNK_ROWS``)
    chunks: int = field(default=1, compare=False)
    #: the rows of each mart
    mart_rows: Mapping[str, int] = field(default_factory=dict, compare=False)

    #: views over the tables published beside the contract's (``schema_drift``)
    side_views: tuple[str, ...] = ()

    @property
    def views(self) -> tuple[str, ...]:
        return self.tables + self.side_views + self.marts


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


def build_warehouse(
    *,
    warehouse: str,
    duckdb_path: str,
    object_store: ObjectStoreSettings | None = None,
    changed_days: Iterable[date] = (),
    rebuild: bool = False,
    memory_limit: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> BuildResult:
    """(Re)build the DuckDB file at ``duckdb_path`` over the Parquet under ``warehouse``.

    An ``s3://`` warehouse needs ``object_store``, the settings to reach it.
    ``changed_days``: days a run just wrote (recomputed even if their files look unchanged);
    ``rebuild``: recompute every day (a repair); ``memory_limit``: DuckDB's for the build
    (``"8GB"``; None: DuckDB's default), past which what can spill spills to a folder beside
    the build file; ``chunk_rows``: the instances the per-day SQL reads at a time (whole
    days). See the module docstring.
    """
    for attempt in range(1, BUILD_ATTEMPTS + 1):
        try:
            return _build_once(
                warehouse=warehouse,
                duckdb_path=duckdb_path,
                object_store=object_store,
                changed_days=frozenset(changed_days),
                rebuild=rebuild,
                memory_limit=memory_limit,
                chunk_rows=chunk_rows,
            )
        except _InputsMoved as moved:
            if attempt == BUILD_ATTEMPTS:
                raise BuildError(
                    f"the files of {warehouse} kept changing while the build read them "
                    f"({BUILD_ATTEMPTS} attempts; last: {moved.days} republished): "
                    f"{moved.__cause__}"
                ) from moved.__cause__
            log.info("build: %s republished while the build read it; starting over", moved.days)
    raise AssertionError("unreachable")


def build_locked(
    wh: WarehouseSettings,
    *,
    changed_days: Iterable[date] = (),
    rebuild: bool = False,
    run_id: str | None = None,
) -> BuildResult:
    """:func:`build_warehouse` of the warehouse ``wh`` names, under its build lock: builds
    follow one another, across machines with ``COC_REDIS_URL`` (``pipelines/shared_lock.py``).
    What ``coc-etl`` and the Dagster warehouse step run."""
    with build_lock(wh.duckdb_path, redis_url=wh.redis_url, run_id=run_id):
        return build_warehouse(
            warehouse=wh.warehouse,
            duckdb_path=wh.duckdb_path,
            object_store=wh.object_store,
            changed_days=changed_days,
            rebuild=rebuild,
        )


class _InputsMoved(Exception):
    """A build's input files changed under it (another run republished a day meanwhile)."""

    def __init__(self, days: str) -> None:
        super().__init__(days)
        self.days = days


def _build_once(
    *,
    warehouse: str,
    duckdb_path: str,
    object_store: ObjectStoreSettings | None,
    changed_days: frozenset[date],
    rebuild: bool,
    memory_limit: str | None,
    chunk_rows: int,
) -> BuildResult:
    """One attempt of :func:`build_warehouse`; raises :class:`_InputsMoved` when a day it
    listed was republished before it had read it (its old files are gone)."""
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
        side: dict[str, str | list[str]] = {
            table: [
                f"{location.uri}/{path}"
                for _, m in sorted(manifests.items())
                for path in m.tables.get(table, [])
            ]
            for table in DRIFT_TABLES
        }
        published = (fs, location, runs, object_store.retire_grace_s)
    else:
        root = _warehouse_root(warehouse)
        sources = {table: table_glob(root, table) for table in TABLES}
        side = {table: table_glob(root, table) for table in DRIFT_TABLES}
    target = check_build_target(duckdb_path)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    remove_debris(target)
    remove_database(tmp)
    wanted = definitions_hash()
    reason = "asked" if rebuild else full_rebuild_reason(target, wanted)
    copy_seconds = 0.0
    try:
        if not reason:
            started = time.perf_counter()
            shutil.copyfile(target, tmp)
            copy_seconds = time.perf_counter() - started
        config: dict[str, str | bool | int | float | list[str]] = {
            "storage_compatibility_version": STORAGE_COMPATIBILITY
        }
        if memory_limit is not None:
            config["memory_limit"] = memory_limit
        con = duckdb.connect(str(tmp), config=config)
        files: dict[tuple[str, date], list[str]] | None = None
        try:
            if object_store is not None:
                register_s3(con, object_store)
            con.execute(MACROS_SQL.read_text())
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {MART_SCHEMA}")
            files = day_files(con, sources)
            days: frozenset[date] | None = None
            if not reason:
                days = _changed_days(con, files) | frozenset(changed_days)
            built = sorted({day for _, day in files} if days is None else days)
            mart_seconds: dict[str, float] = {}
            per_day = [path for path in mart_files() if is_per_day(path)]
            # The per-day SQL runs over table views of a few days' files at a time, so it reads
            # nothing else whatever its shape (a CTE read twice, GROUPING SETS), and a full
            # rebuild needs the memory of one chunk, not of the history.
            chunks = day_chunks(con, built, files, chunk_rows)
            for n, chunk in enumerate(chunks, 1):
                if len(chunks) > 1:
                    log.info(
                        "build: days %s to %s (%d of %d groups of days)",
                        min(chunk),
                        max(chunk),
                        n,
                        len(chunks),
                    )
                for table in TABLES:
                    _create_table_view(con, table, _files_of(table, files, chunk))
                for path in sorted(PARTS_DIR.glob("*.sql")):
                    store_per_day(con, path, chunk, mart_seconds, view=False)
                for path in per_day:
                    store_per_day(con, path, chunk, mart_seconds, view=True)
            months: Sequence[date | None] = sorted({day.replace(day=1) for day in built})
            for month in months or [None]:
                store_rollups(con, month, mart_seconds)
            names = [path.stem for path in per_day]
            empty = tuple(t for t in TABLES if not _create_table_view(con, t, sources[t]))
            for table, files_of_side in side.items():
                _create_table_view(con, table, files_of_side, DRIFT_TABLES[table])
            names += [
                _create_mart(con, path, days, mart_seconds)
                for path in mart_files()
                if not is_per_day(path)
            ]
            marts = tuple(sorted(names))
            mart_rows = {m: scalar(con, f"SELECT count(*) FROM {identifier(m)}") for m in marts}
            rows = record_state(con, files, days, wanted)
            con.execute("CHECKPOINT")
        except duckdb.Error as exc:
            moved = _moved_days(sources, files)
            if moved:
                raise _InputsMoved(moved) from exc
            raise
        finally:
            con.close()
        publish(tmp, target)
    finally:
        remove_database(tmp)
    if published is not None:
        _views_published(*published)
    return BuildResult(
        duckdb_path=str(target),
        tables=tuple(TABLES),
        side_views=tuple(side),
        marts=marts,
        rows=rows,
        empty_tables=empty,
        full=days is None,
        full_reason=reason,
        changed_days=tuple(sorted(days or ())),
        mart_seconds=mart_seconds,
        copy_seconds=copy_seconds,
        chunks=len(chunks),
        mart_rows=mart_rows,
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


def _moved_days(
    sources: Mapping[str, str | list[str]], files: Mapping[tuple[str, date], list[str]] | None
) -> str:
    """The days whose files are no longer those the build listed, as text ("" if none).

    A local day's republish swaps its folder and deletes the old files at once; on object
    storage the superseded objects outlive the grace period, so only globs are listed again.
    """
    if files is None:
        return ""
    try:
        with duckdb.connect() as fresh:  # the build's connection may be in a failed transaction
            now = day_files(fresh, sources)
    except duckdb.Error:
        return ""
    moved = {
        day
        for (table, day) in files.keys() | now.keys()
        if files.get((table, day)) != now.get((table, day))
    }
    return ", ".join(day.isoformat() for day in sorted(moved))


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
    table: str, files: Mapping[tuple[str, date], list[str]], days: Collection[date]
) -> list[str]:
    """``table``'s files on ``days``."""
    return [path for day in sorted(days) for path in files.get((table, day), [])]


def _create_table_view(
    con: duckdb.DuckDBPyConnection,
    table: str,
    files: str | list[str],
    schema: pa.Schema | None = None,
) -> bool:
    """Create the view of one table over ``files``, a glob or the list of its objects;
    whether it has files (else it is a typed empty view)."""
    schema = TABLES[table] if schema is None else schema
    if isinstance(files, str):
        has_files = scalar(con, "SELECT count(*) > 0 FROM glob(?)", [files])
        named = literal(files)
    else:
        has_files = bool(files)
        named = "[" + ", ".join(literal(f) for f in files) + "]"
    if has_files:
        source = f"read_parquet({named}, hive_partitioning = true, hive_types = {{'dt': DATE}})"
    else:
        source = _empty_relation(con, schema)
    template = (VIEWS_DIR / f"{table}.sql").read_text()
    con.execute(
        fill(template, columns=", ".join(identifier(n) for n in schema.names), source=source)
    )
    return bool(has_files)


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
    reach = trailing_days(path)
    if reach is not None:
        return store_trailing(con, path, days, seconds, reach=reach)
    started = time.perf_counter()
    name = run_definition(con, path)
    stored = f"{MART_SCHEMA}.{identifier(name)}"
    con.execute(f"CREATE OR REPLACE TABLE {stored} AS SELECT * FROM {identifier(name)}")
    con.execute(f"CREATE OR REPLACE VIEW {identifier(name)} AS SELECT * FROM {stored}")
    seconds[name] = time.perf_counter() - started
    return name


def _empty_relation(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> str:
    """A zero-row relation with the table's columns and DuckDB types, then ``dt DATE``.

    The types are those DuckDB gives the Arrow schema, which are the ones it reads back from
    the Parquet files (a test checks that the two agree).
    """
    types = con.from_arrow(schema.empty_table()).types
    columns = [
        f"CAST(NULL AS {duckdb_type}) AS {identifier(name)}"
        for name, duckdb_type in zip(schema.names, types, strict=True)
    ]
    columns.append("CAST(NULL AS DATE) AS dt")
    return "(SELECT " + ", ".join(columns) + " WHERE false)"
