"""Build ``coc.duckdb``: views over the Parquet tables, then the marts, incrementally.

The DuckDB file holds views and the marts' computed rows: one view per Delta table over the
files of its pinned version (Hive partitioning, ``dt`` typed ``DATE``),
the failure-counting macros of ``sql/macros.sql``, and the marts from ``sql/marts/*.sql``
on top (each file opens with a comment whose first paragraph describes the mart), their
rows stored in ``mart_data`` tables that the mart views read. It is written in the storage
format of DuckDB 1.1 (``STORAGE_COMPATIBILITY``), so that the older engines inside BI tools
open it too; its views use absolute paths, so it opens from anywhere.

Incremental: a build recomputes only the days that changed. How each part, rollup and mart
is rebuilt is declared in the registry (``marts.py``); from it, the changed days and the
previous file, ``plan.py`` decides what this build recomputes and in what order, and
``_execute`` runs that plan. Per-day SQL (a day's rows depend on that day's partitions only)
is stored per day and its changed days are deleted and recomputed, a group of days at a time
(at most ``CHUNK_ROWS`` instances, so that a full rebuild of a long history needs the memory
of one group). Every other mart is recomputed from small per-day tables (``sql/parts/*.sql``,
per-day themselves, kept in ``mart_data`` only) whose columns merge exactly across days:
sums, mins and maxes, arg_max with the key it chose by, and per-day distinct sets where
distinct counts would not add; merged first per month (``sql/rollups/*.sql``, recomputed for
the changed months from those months' parts only), so that the all-time marts merge a few
rows per key and month, and distinct sets tallied over every month by difference (the
all-time distinct hosts of a message pattern): ``store.py``.

Which days changed, and when a build is a full rebuild instead: ``changes.py``. Marts whose
day depends on the days before it (``failure_shifts``, trailing 14 days) are recomputed for
the changed days and the N days after each: ``trailing.py``. The file is built on a copy and
swapped in (copy-on-write, readers keep reading, a failed build leaves the previous file as
it was): ``publish.py``. The SQL files: ``definitions.py``.

The tables are Delta Lake tables (``pipelines/lake/tables.py``). The build pins one version of each
(``pinning.py``: each day of the three tables, and of the ``schema_drift`` side table, from
one run) and writes each table's view as
``read_parquet([the files of that version])``: no extension is needed to read the file, and a
reader sees exactly the days as one run of each published them, never a file that a later
commit superseded next to its replacement. After publishing the file, the build vacuums the
tables (``vacuum.py``), keeping every file that the new file or the one it replaced names
(``raw_responses``, which no file names, keeps its newest version only).
The view of a table that has no files yet is a typed empty relation with the same columns,
so the marts and every query keep working on a fresh warehouse. ``as_of`` builds the file
over the tables as they were at a past moment (``coc-etl report --as-of``).

On an ``s3://`` warehouse connections read ``s3://`` through our S3 client, registered on
them (``pipelines/lake/objectstore.py``; ``connect`` does it when given the settings).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from pipelines.lake.migrate import ensure_tables
from pipelines.lake.objectstore import S3Location, register_s3, s3_filesystem
from pipelines.lake.tables import Lake, storage_options
from pipelines.locks.shared import build_lock
from pipelines.settings import ObjectStoreSettings, WarehouseSettings
from pipelines.transform.schemas import DRIFT_TABLES, RAW_TABLES, TABLES
from warehouse.changes import changed_days as _changed_days
from warehouse.changes import full_rebuild_reason, previous_versions, record_state
from warehouse.definitions import (
    MACROS_SQL,
    MART_SCHEMA,
    MARTS_DIR,
    VIEWS_DIR,
    definitions_hash,
    fill,
    identifier,
    literal,
    mart_description,
    run_definition,
    scalar,
    sql_path,
)
from warehouse.marts import Rebuilt, Stage
from warehouse.pinning import Pinned, pin_tables
from warehouse.plan import BuildPlan, MergeStep, plan_build
from warehouse.publish import (
    BuildError,
    WarehouseBusyError,
    check_build_target,
    publish,
    remove_database,
    remove_debris,
    stamp_ours,
)
from warehouse.store import CHUNK_ROWS, day_chunks, store_per_day, store_rollups
from warehouse.trailing import store_trailing
from warehouse.vacuum import vacuum_tables

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

_GLOB_CHARACTERS = frozenset("*?[]{}")

#: hours a superseded data file stays before the vacuum (``COC_VACUUM_RETENTION_HOURS``)
DEFAULT_RETENTION_H = 168.0


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
    as_of: datetime | None = None,
    vacuum_retention_h: float | None = DEFAULT_RETENTION_H,
) -> BuildResult:
    """(Re)build the DuckDB file at ``duckdb_path`` over the Delta tables under ``warehouse``.

    An ``s3://`` warehouse needs ``object_store``, the settings to reach it.
    ``changed_days``: days a run just wrote (recomputed even if their files look unchanged);
    ``rebuild``: recompute every day (a repair); ``memory_limit``: DuckDB's for the build
    (``"8GB"``; None: DuckDB's default), past which what can spill spills to a folder beside
    the build file; ``chunk_rows``: the instances the per-day SQL reads at a time (whole
    days); ``as_of``: the tables as they were then (a full build, no vacuum);
    ``vacuum_retention_h``: the vacuum's retention after publishing (None: no vacuum). See
    the module docstring.
    """
    lake = warehouse_reader(warehouse, object_store)
    if as_of is None:
        ensure_tables(lake)  # a warehouse of plain Hive folders becomes Delta (in place)
    # the side tables are pinned with the contract's: each day's from the marker's run
    pinned = pin_tables(lake, [*TABLES, *DRIFT_TABLES], as_of=as_of)
    result, kept_before = _build_pinned(
        pinned,
        duckdb_path=duckdb_path,
        object_store=object_store,
        changed_days=frozenset(changed_days),
        rebuild=rebuild or as_of is not None,
        memory_limit=memory_limit,
        chunk_rows=chunk_rows,
    )
    if as_of is None and vacuum_retention_h is not None:
        keep = {
            table: pinned.named_versions.get(table, set()) | kept_before.get(table, set())
            for table in [*TABLES, *DRIFT_TABLES, *RAW_TABLES]
        }
        try:
            vacuum_tables(lake, keep, retention_h=vacuum_retention_h, opened=pinned.opened)
        except Exception as exc:  # the file is published; the next build vacuums
            log.warning("vacuum of %s failed (the next build tries again): %s", warehouse, exc)
    return result


def warehouse_reader(warehouse: str, object_store: ObjectStoreSettings | None) -> Lake:
    """The warehouse's Delta tables, for reading and vacuuming."""
    if warehouse.startswith("s3://"):
        if object_store is None:
            raise ValueError(f"building over {warehouse} needs the object-storage settings")
        location = S3Location.parse(warehouse)
        return Lake(
            location.uri,
            options=storage_options(object_store),
            filesystem=(s3_filesystem(object_store), location.path),
        )
    return Lake(_warehouse_root(warehouse))


def build_locked(
    wh: WarehouseSettings,
    *,
    changed_days: Iterable[date] = (),
    rebuild: bool = False,
    run_id: str | None = None,
) -> BuildResult:
    """:func:`build_warehouse` of the warehouse ``wh`` names, under its build lock: builds
    follow one another, across machines with ``COC_REDIS_URL`` (``pipelines/locks/shared.py``).
    What ``coc-etl`` and the Dagster warehouse step run."""
    with build_lock(wh.duckdb_path, redis_url=wh.redis_url, run_id=run_id):
        return build_warehouse(
            warehouse=wh.warehouse,
            duckdb_path=wh.duckdb_path,
            object_store=wh.object_store,
            changed_days=changed_days,
            rebuild=rebuild,
            vacuum_retention_h=wh.vacuum_retention_h,
        )


def _build_pinned(
    pinned: Pinned,
    *,
    duckdb_path: str,
    object_store: ObjectStoreSettings | None,
    changed_days: frozenset[date],
    rebuild: bool,
    memory_limit: str | None,
    chunk_rows: int,
) -> tuple[BuildResult, dict[str, set[int]]]:
    """Build the file over the ``pinned`` tables: plan what to recompute (``plan.py``), then
    execute the plan on a copy of the previous file, or a new one, and publish it. Returns
    what it built and the versions the file it replaced named (the vacuum keeps their files
    too)."""
    files = {key: paths for key, paths in pinned.files.items() if key[0] in TABLES}
    target = check_build_target(duckdb_path)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    remove_debris(target)
    remove_database(tmp)
    wanted = definitions_hash()
    reason = "asked" if rebuild else full_rebuild_reason(target, wanted)
    kept_before = previous_versions(target)
    copy_seconds = 0.0
    try:
        if not reason:
            started = time.perf_counter()
            shutil.copyfile(target, tmp)
            copy_seconds = time.perf_counter() - started
        con = _open_build_file(tmp, memory_limit=memory_limit, object_store=object_store)
        try:
            changed: frozenset[date] = frozenset()
            if not reason:
                signatures = {k: v for k, v in pinned.signatures.items() if k[0] in TABLES}
                changed = _changed_days(con, signatures) | changed_days
            plan = plan_build(
                days_present={day for _, day in files}, changed=changed, full_reason=reason
            )
            done = _execute(con, plan, pinned=pinned, chunk_rows=chunk_rows)
            rows = record_state(con, pinned, None if plan.full else plan.days, wanted)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        publish(tmp, target)
    finally:
        remove_database(tmp)
    result = BuildResult(
        duckdb_path=str(target),
        tables=tuple(TABLES),
        side_views=tuple(DRIFT_TABLES),
        marts=plan.marts,
        rows=rows,
        empty_tables=done.empty_tables,
        full=plan.full,
        full_reason=reason,
        changed_days=() if plan.full else plan.days,
        mart_seconds=done.seconds,
        copy_seconds=copy_seconds,
        chunks=done.chunks,
        mart_rows=done.mart_rows,
    )
    return result, kept_before


def _open_build_file(
    path: Path, *, memory_limit: str | None, object_store: ObjectStoreSettings | None
) -> duckdb.DuckDBPyConnection:
    """Open the file being built, in DuckDB 1.1's storage format, with the macros and the
    ``mart_data`` schema in place."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "storage_compatibility_version": STORAGE_COMPATIBILITY
    }
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(str(path), config=config)
    try:
        if object_store is not None:
            register_s3(con, object_store)
        con.execute(MACROS_SQL.read_text())
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {MART_SCHEMA}")
        stamp_ours(con)
    except BaseException:
        con.close()
        raise
    return con


@dataclass(frozen=True, kw_only=True)
class _Executed:
    """What executing a plan did."""

    empty_tables: tuple[str, ...]
    seconds: dict[str, float]
    chunks: int
    mart_rows: dict[str, int]


def _execute(
    con: duckdb.DuckDBPyConnection, plan: BuildPlan, *, pinned: Pinned, chunk_rows: int
) -> _Executed:
    """Run ``plan`` on the open build file: the per-day models a group of days at a time, the
    rollups month by month, then the table views over every day and the merged marts."""
    files = {key: paths for key, paths in pinned.files.items() if key[0] in TABLES}
    seconds: dict[str, float] = {}
    # The per-day SQL runs over table views of a few days' files at a time, so it reads
    # nothing else whatever its shape (a CTE read twice, GROUPING SETS), and a full
    # rebuild needs the memory of one chunk, not of the history.
    chunks = day_chunks(con, list(plan.days), files, chunk_rows)
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
        for model in plan.per_day:
            store_per_day(con, sql_path(model), chunk, seconds, view=model.stage is Stage.MART)
    months: Sequence[date | None] = plan.months
    for month in months or [None]:
        store_rollups(con, plan.rollups, month, seconds)
    every_day = {day for _, day in files}
    empty = tuple(
        table
        for table in TABLES
        if not _create_table_view(con, table, _files_of(table, files, every_day))
    )
    for table, schema in DRIFT_TABLES.items():
        side = [
            path for (t, _), paths in sorted(pinned.files.items()) if t == table for path in paths
        ]
        _create_table_view(con, table, side, schema)
    for step in plan.merged:
        _store_merged(con, step, seconds)
    return _Executed(
        empty_tables=empty,
        seconds=seconds,
        chunks=len(chunks),
        mart_rows={m: scalar(con, f"SELECT count(*) FROM {identifier(m)}") for m in plan.marts},
    )


def _warehouse_root(warehouse: str) -> str:
    """A local warehouse root as DuckDB should see it: an absolute path without glob
    characters."""
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
    files: list[str],
    schema: pa.Schema | None = None,
) -> bool:
    """Create the view of one table over ``files``, the files of its pinned version; whether
    it has files (else it is a typed empty view). ``schema``: a side table's (else the
    contract table's)."""
    schema = TABLES[table] if schema is None else schema
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


def _store_merged(
    con: duckdb.DuckDBPyConnection, step: MergeStep, seconds: dict[str, float]
) -> str:
    """Compute one merged mart into ``mart_data.<name>``; its view becomes ``SELECT *`` of
    that table.

    Dashboards read a small table instead of aggregating every instance on each refresh; the
    build runs after every materialization, so a mart is as fresh as the Parquet.
    """
    model = step.model
    if model.rebuilt is Rebuilt.TRAILING:
        return store_trailing(
            con,
            sql_path(model),
            replaces=step.replaces,
            reads=step.reads,
            episodes=model.episodes,
            seconds=seconds,
        )
    started = time.perf_counter()
    name = run_definition(con, sql_path(model))
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
