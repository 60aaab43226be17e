"""Stream one day of every table into its Parquet files, then commit all of it to the lake.

Layout under the warehouse root (a local folder or an ``s3://bucket/prefix`` URI)::

    <root>/<table>/_delta_log/...                                  each table's Delta log
    <root>/<table>/dt=YYYY-MM-DD/part-<run_id>-00000.parquet       one run's file of the day
    <root>/_staging/dt=YYYY-MM-DD/.lock                            the day's lock (local only)

A file becomes part of its table only when a commit of the table's log names it
(``pipelines/lake/publish.py``, ``pipelines/lake/tables.py``): readers read through the log, so a
file being written, or one that an aborted or killed run left, is never read.

The protocol of a :class:`DayWriter`:

1. Start (entering the ``with`` block, before the caller asks the API anything about the
   day): pick a ``run_id`` that sorts by time and take the day's lock
   (``pipelines/locks/day.py``): a second run of the same day waits for the first, up to
   ``lock_timeout_s``, then fails naming the day and the run that holds it.
2. ``write``: check each batch against the table's schema, buffer it until ``row_group_rows``
   rows or ``row_group_bytes`` bytes are pending, and write row groups to the table's file as
   they come, so the day is never held in memory: a table's pending rows stay under
   ``row_group_bytes`` plus one batch, whatever the size of a value (a 40 MB message makes
   smaller row groups, not a larger buffer).
3. ``commit``: close and ``fsync`` every file (a table without rows gets a valid empty file, so
   a re-run that now finds nothing replaces the old rows), then hand the day to the publisher
   (``pipelines/lake/publish.py``), which checks the shrink guard and commits each table's day
   in one Delta commit. Then the lock is released.
4. Leaving the ``with`` block without ``commit`` (an exception, ``KeyboardInterrupt`` and
   ``SystemExit`` included, or no call) aborts: the run's uncommitted files are deleted, the
   published data is untouched, and the lock is released. A killed process releases its lock
   with it; its files stay, named by no commit, until the vacuum removes them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.errors import (
    DayLockedError,
    SchemaMismatchError,
    ShrinkRefusedError,
    WriteError,
)
from pipelines.lake.migrate import ensure_tables
from pipelines.lake.objectstore import S3Location, s3_filesystem
from pipelines.lake.publish import (
    STAGING,
    DeltaPublish,
    ShrinkGuard,
    StagedDay,
    fsync_dir,
    fsync_file,
    local_path,
)
from pipelines.lake.tables import DataFile, Lake, warehouse_lake
from pipelines.locks.day import DEFAULT_LOCK_TIMEOUT_S, LOCK_FILE, DayLock, object_store_lock_path
from pipelines.settings import WarehouseSettings
from pipelines.transform.schemas import TABLES

__all__ = [
    "DayLockedError",
    "DayWriter",
    "SchemaMismatchError",
    "ShrinkRefusedError",
    "TableStats",
    "WriteError",
    "publisher_for",
    "warehouse_publisher",
]

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 64_000
#: pending bytes of a table that make a row group even before ``ROW_GROUP_ROWS``: the bound of
#: the writer's buffer when values are large
ROW_GROUP_BYTES = 32 * 2**20
COMPRESSION = "zstd"


@dataclass(frozen=True)
class TableStats:
    """What ``commit`` published for one table."""

    rows: int
    files: int
    bytes: int


def publisher_for(
    root: str,
    *,
    filesystem: pafs.FileSystem | None = None,
    shrink: ShrinkGuard | None = None,
) -> DeltaPublish:
    """The publisher for a local warehouse root (a folder, or a path inside a local
    ``filesystem``). An ``s3://`` warehouse needs its settings: ``warehouse_publisher``."""
    if filesystem is None:
        if "://" in root and not root.startswith("file://"):
            raise ValueError(f"{root}: an object-storage warehouse needs its settings")
        filesystem, root = pafs.LocalFileSystem(), root.removeprefix("file://")
    local = local_path(filesystem, root)
    if local is None:
        raise ValueError(f"{root}: not on a local disk; use warehouse_publisher")
    local = os.path.abspath(local)
    return DeltaPublish(Lake(local), pafs.LocalFileSystem(), local, shrink=shrink)


def warehouse_publisher(wh: WarehouseSettings, *, lock_dir: str | None = None) -> DeltaPublish:
    """The publisher of the warehouse ``wh`` names, with its object-storage settings and its
    shrink guard."""
    shrink = ShrinkGuard(max_shrink=wh.max_shrink, allow=wh.allow_shrink)
    if wh.object_store is None:
        return publisher_for(wh.warehouse, shrink=shrink)
    where = S3Location.parse(wh.warehouse)
    return DeltaPublish(
        warehouse_lake(wh, lock_dir=lock_dir),
        s3_filesystem(wh.object_store),
        where.path,
        shrink=shrink,
    )


def new_run_id() -> str:
    """A name unique to one run that sorts by start time: ``20261125T020000123456Z-1a2b3c4d``."""
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{now}-{secrets.token_hex(4)}"


class _StagedFile:
    """One table's staged Parquet file: the writer, opened on first use, and pending rows."""

    def __init__(self, path: str, schema: pa.Schema) -> None:
        self.path, self.schema = path, schema
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.pending_bytes = 0
        self.rows = 0


class DayWriter:
    """Stream one day of every table into staging, then publish all of it with ``commit``.

    Where to: ``root``, a local folder or a URI such as ``s3://bucket/prefix`` (with
    ``filesystem`` given, a path inside it), whose publisher ``publisher_for`` picks;
    or ``publisher``, one built by the caller (tests inject failing ones). Use it as a context
    manager, or call ``abort`` when not committing: the day's lock is held from entering
    (or the first ``write``) until ``commit`` or ``abort``.

    ``lock_timeout_s`` is how long to wait for another run of the same day (0: fail at
    once); ``lock_dir`` is where object-storage warehouses keep their local day locks.
    """

    def __init__(
        self,
        *,
        day: dt.date,
        root: str | None = None,
        filesystem: pafs.FileSystem | None = None,
        publisher: DeltaPublish | None = None,
        tables: Mapping[str, pa.Schema] = TABLES,
        row_group_rows: int = ROW_GROUP_ROWS,
        row_group_bytes: int = ROW_GROUP_BYTES,
        compression: str = COMPRESSION,
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
        lock_dir: str | None = None,
    ) -> None:
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows must be positive, got {row_group_rows}")
        if row_group_bytes < 1:
            raise ValueError(f"row_group_bytes must be positive, got {row_group_bytes}")
        for name in tables:
            if not name or "/" in name or name.startswith(("_", ".")):
                raise ValueError(f"table name {name!r} cannot be a folder of the warehouse")
        if publisher is None:
            if root is None:
                raise ValueError("DayWriter needs a root or a publisher")
            publisher = publisher_for(root, filesystem=filesystem)
        elif root is not None or filesystem is not None:
            raise ValueError("give DayWriter a root (and filesystem) or a publisher, not both")
        self.day, self.run_id = day, new_run_id()
        self._publisher, self._fs = publisher, publisher.fs
        self._staged = StagedDay(
            root=publisher.root.rstrip("/"), day=day, run_id=self.run_id, tables=tuple(tables)
        )
        self._tables = dict(tables)
        self._row_group_rows, self._compression = row_group_rows, compression
        self._row_group_bytes = row_group_bytes
        self._files = {t: _StagedFile(self._staged.path(t), s) for t, s in self._tables.items()}
        if publisher.local_root is not None:
            lock_path = os.path.join(publisher.local_root, STAGING, self._staged.partition)
            lock_path = os.path.join(lock_path, LOCK_FILE)
        else:
            lock_path = object_store_lock_path(publisher.location, day, lock_dir)
        self.lock = DayLock(lock_path, day=day, run_id=self.run_id, timeout_s=lock_timeout_s)
        self._state = "new"  # new -> open -> committed | aborted

    # -- public API ------------------------------------------------------------------------

    def __enter__(self) -> DayWriter:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state != "committed":
            self.abort()

    def write(self, table: str, batch: pa.RecordBatch | pa.Table) -> None:
        """Add rows to ``table``; full row groups go to the staged file as they accumulate."""
        self._start()
        if self._state != "open":
            raise self._error(f"cannot write after the run was {self._state}", table=table)
        if table not in self._files:
            raise self._error(f"unknown table {table!r}, not one of {sorted(self._files)}")
        f = self._files[table]
        problem = _mismatch(f.schema, batch)
        if problem:
            raise self._error(problem, table=table, kind=SchemaMismatchError)
        if not batch.schema.equals(f.schema):  # differs in nullability or metadata only
            batch = type(batch).from_arrays(batch.columns, schema=f.schema)
        try:
            self._open(f)
            f.pending.extend(batch.to_batches() if isinstance(batch, pa.Table) else [batch])
            f.pending_rows += batch.num_rows
            f.pending_bytes += batch.nbytes
            if f.pending_rows >= self._row_group_rows:
                self._flush(f, whole_groups_only=True)
            elif f.pending_bytes >= self._row_group_bytes:  # large values: a smaller group
                self._flush(f, whole_groups_only=False)
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"writing failed: {exc}", table=table, path=f.path) from exc

    def commit(self) -> dict[str, TableStats]:
        """Close every table's file and publish the whole day; returns what was written."""
        self._start()
        if self._state != "open":
            raise self._error(f"cannot commit after the run was {self._state}")
        stats = {t: self._close(t, f) for t, f in self._files.items()}
        written = {
            t: DataFile(
                path=self._staged.relative(t),
                size=stats[t].bytes,
                rows=stats[t].rows,
                modified_ms=int(time.time() * 1000),
            )
            for t in self._files
        }
        self._publisher.publish(self._staged, written, self._tables)
        self._state = "committed"
        self._release()
        return stats

    def abort(self) -> None:
        """Drop everything staged by this run; the published day stays as it was."""
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        try:
            for f in self._files.values():
                if f.writer is not None:
                    try:
                        f.writer.close()
                    except Exception:  # the file is deleted next; its close error does not matter
                        log.debug("closing %s while aborting failed", f.path, exc_info=True)
            try:  # the files no commit names; a committed one belongs to its table now
                self._publisher.discard(self._staged)
            except OSError as exc:  # named by no commit: the vacuum removes them later
                log.warning("could not delete the uncommitted files of %s: %s", self.day, exc)
        finally:
            self._release()

    # -- staging ---------------------------------------------------------------------------

    def _error(
        self,
        message: str,
        *,
        table: str | None = None,
        path: str | None = None,
        kind: type[WriteError] = WriteError,
    ) -> WriteError:
        return kind(message, table=table, day=self.day, path=path)

    def _start(self) -> None:
        """Open the run: take the day's lock, then remove what dead runs of the day left."""
        if self._state != "new":
            return
        self._state = "aborted"  # until the lock is ours and the debris gone
        try:
            try:
                self.lock.acquire()
            except OSError as exc:
                msg = f"cannot take the day's lock: {exc}"
                raise self._error(msg, path=self.lock.path) from exc
            try:  # a warehouse of plain Hive folders becomes Delta first (in place)
                ensure_tables(self._publisher.lake, self._tables)
            except Exception as exc:  # delta-rs's errors are not OSErrors
                msg = f"cannot open the warehouse's tables: {exc}"
                raise self._error(msg, path=self._publisher.location) from exc
        except BaseException:
            self._release()
            raise
        self._state = "open"

    def _open(self, f: _StagedFile) -> None:
        if f.writer is None:
            if self._publisher.local_root is not None:  # object stores need no folders
                self._fs.create_dir(f.path.rsplit("/", 1)[0], recursive=True)
            f.writer = pq.ParquetWriter(
                f.path, f.schema, filesystem=self._fs, compression=self._compression
            )

    def _flush(self, f: _StagedFile, *, whole_groups_only: bool) -> None:
        assert f.writer is not None
        pending = pa.Table.from_batches(f.pending, schema=f.schema)
        n = pending.num_rows
        if whole_groups_only:
            n -= n % self._row_group_rows
        if n:
            f.writer.write_table(pending.slice(0, n), row_group_size=self._row_group_rows)
            f.rows += n
        rest = pending.slice(n)
        f.pending, f.pending_rows = rest.to_batches(), rest.num_rows
        f.pending_bytes = rest.nbytes if rest.num_rows else 0

    def _close(self, table: str, f: _StagedFile) -> TableStats:
        try:
            self._open(f)
            assert f.writer is not None
            if f.pending_rows:
                self._flush(f, whole_groups_only=False)
            f.writer.close()
            local = local_path(self._fs, f.path)
            if local is not None:
                fsync_file(local)
                fsync_dir(os.path.dirname(local))
            size = self._fs.get_file_info(f.path).size or 0
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"closing failed: {exc}", table=table, path=f.path) from exc
        return TableStats(rows=f.rows, files=1, bytes=size)

    def _release(self) -> None:
        """Let the day go; then remove the lock's folder if no other run uses it."""
        held = self.lock.held
        self.lock.release()
        if held:
            with contextlib.suppress(OSError):  # another run of the day is in it: theirs now
                os.rmdir(os.path.dirname(self.lock.path))


def _mismatch(schema: pa.Schema, batch: object) -> str | None:
    """What keeps ``batch`` from being written as ``schema``, or None."""
    if not isinstance(batch, pa.RecordBatch | pa.Table):
        return f"expected a RecordBatch or a Table, got {type(batch).__name__}"
    names = batch.schema.names
    if names != schema.names:
        missing = [n for n in schema.names if n not in names]
        extra = [n for n in names if n not in schema.names]
        if missing or extra:
            return f"missing columns {missing}, unexpected columns {extra}"
        return f"columns out of order: {names}"
    for field, column in zip(schema, batch.columns, strict=True):
        if column.type != field.type:
            return f"column {field.name!r} is {column.type}, expected {field.type}"
        if not field.nullable and column.null_count:
            return f"column {field.name!r} has {column.null_count} nulls but may have none"
    return None
