"""Write one day of every table into Hive-partitioned Parquet, and swap it in whole.

Layout under the warehouse root (a local folder or an ``s3://bucket/prefix`` URI)::

    <root>/<table>/dt=YYYY-MM-DD/part-<run_id>-00000.parquet      published: what readers glob
    <root>/_staging/dt=YYYY-MM-DD/<run_id>/<table>/part-....parquet  one run's work in progress

Readers glob ``<root>/<table>/dt=*/*.parquet`` and never look under ``_staging`` (pyarrow
datasets also skip names that start with ``_``), so a staged or half-written file is never read.

The protocol of a :class:`DayWriter`:

1. Start: pick a ``run_id`` that sorts by time, and delete the staging folders of the same day
   that older runs left behind (a run killed with ``kill -9``). Staging of other days is never
   touched: another process may be writing them.
2. ``write``: check each batch against the table's schema, buffer it until ``row_group_rows``
   rows are pending, and write full row groups to the table's staged file as they come, so the
   day is never held in memory.
3. ``commit``: close every file (a table without rows gets a valid empty file, so a re-run that
   now finds nothing replaces the old rows), then publish:

   - on a local filesystem, ``fsync`` the files and folders, then swap each table's staged
     folder with its published ``dt=`` folder. On Linux this is ``renameat2(RENAME_EXCHANGE)``:
     one atomic step, readers see the old folder or the new one, never a mix nor nothing.
     Where the kernel or filesystem lacks it, the old folder is renamed away to
     ``<table>.old`` in the run's staging and the new one renamed in; between those two renames
     the table's day is briefly absent, and if the process dies right there the next writer of
     the day renames ``<table>.old`` back before cleaning up. A failed swap is undone, and the
     tables already swapped are swapped back, before the error is raised.
   - on object storage (no rename), copy each staged object into the ``dt=`` prefix under its
     new unique name, then delete every other object of that prefix (the previous run's).
     Between the copy and the delete both runs' files are visible: a reader that globs the
     day in that moment (DuckDB, a BI refresh) double counts it. A copy that fails deletes the
     copies already made, leaving the previous run's objects alone. The copy is server-side
     (S3 ``CopyObject``: at most 5 GiB per file).

   Tables are swapped one after another, each atomically; a kill between two swaps leaves some
   tables at the new version and some at the old, each whole, until the day is run again.
4. Leaving the ``with`` block without ``commit`` (an exception, or no call) aborts: the
   staged files are removed and the published data is untouched.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.flatten import TABLES

__all__ = ["DayWriter", "SchemaMismatchError", "TableStats", "WriteError"]

log = logging.getLogger(__name__)

STAGING = "_staging"
ROW_GROUP_ROWS = 64_000
COMPRESSION = "zstd"
_RUN_ID = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{8}$")


class WriteError(Exception):
    """Writing or publishing a day failed; names the table, the day and the file."""

    def __init__(
        self, message: str, *, table: str | None = None, day: dt.date, path: str | None = None
    ) -> None:
        self.message, self.table, self.day, self.path = message, table, day, path
        super().__init__(message)

    def __str__(self) -> str:
        where = [f"table={self.table}"] if self.table else []
        where.append(f"day={self.day.isoformat()}")
        if self.path:
            where.append(f"path={self.path}")
        return f"{self.message} [{' '.join(where)}]"


class SchemaMismatchError(WriteError, ValueError):
    """A batch whose columns, types or nulls do not fit its table's schema."""


@dataclass(frozen=True)
class TableStats:
    """What ``commit`` published for one table."""

    rows: int
    files: int
    bytes: int


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
        self.rows = 0


class DayWriter:
    """Stream one day of every table into staging, then publish all of it with ``commit``.

    ``root`` is a local folder or a URI such as ``s3://bucket/prefix``; with ``filesystem``
    given, ``root`` is a path inside it. ``object_store`` forces the copy-then-delete publish
    (``True``) or requires the rename swap (``False``); by default it follows the filesystem.
    Use it as a context manager, or call ``abort`` when not committing.
    """

    def __init__(
        self,
        *,
        root: str,
        day: dt.date,
        tables: Mapping[str, pa.Schema] = TABLES,
        row_group_rows: int = ROW_GROUP_ROWS,
        compression: str = COMPRESSION,
        filesystem: pafs.FileSystem | None = None,
        object_store: bool | None = None,
    ) -> None:
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows must be positive, got {row_group_rows}")
        for name in tables:
            if not name or "/" in name or name.startswith(("_", ".")):
                raise ValueError(f"table name {name!r} cannot be a folder of the warehouse")
        if filesystem is None:
            if "://" in root:
                filesystem, root = pafs.FileSystem.from_uri(root)
            else:
                filesystem, root = pafs.LocalFileSystem(), os.path.abspath(root)
        self.day, self.run_id = day, new_run_id()
        self._fs, self._root = filesystem, root.rstrip("/")
        self._tables = dict(tables)
        self._row_group_rows, self._compression = row_group_rows, compression
        self._local_root = _local_path(filesystem, self._root)
        if object_store is False and self._local_root is None:
            raise ValueError(f"{type(filesystem).__name__} has no rename: use object_store")
        self._object_store = self._local_root is None if object_store is None else object_store
        self._dt = f"dt={day.isoformat()}"
        self._run_dir = self._path(STAGING, self._dt, self.run_id)
        self._files = {
            t: _StagedFile(f"{self._run_dir}/{t}/{self._file_name()}", s)
            for t, s in self._tables.items()
        }
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
            if f.pending_rows >= self._row_group_rows:
                self._flush(f, whole_groups_only=True)
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"writing failed: {exc}", table=table, path=f.path) from exc

    def commit(self) -> dict[str, TableStats]:
        """Close every table's file and swap the whole day in; returns what was written."""
        self._start()
        if self._state != "open":
            raise self._error(f"cannot commit after the run was {self._state}")
        stats = {t: self._close(t, f) for t, f in self._files.items()}
        if self._object_store:
            self._publish_by_copy()
        else:
            self._publish_by_swap()
        self._state = "committed"
        try:
            self._remove_run_dir()
        except OSError as exc:  # published already; the next writer of the day cleans up
            log.warning("could not remove %s: %s", self._run_dir, exc)
        return stats

    def abort(self) -> None:
        """Drop everything staged by this run; the published day stays as it was."""
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        for f in self._files.values():
            if f.writer is not None:
                try:
                    f.writer.close()
                except Exception:  # the file is deleted next; its close error does not matter
                    log.debug("closing %s while aborting failed", f.path, exc_info=True)
        if not self._object_store:
            try:  # a failed swap may have left a published folder renamed away: put it back
                self._restore_moved_away(self.run_id)
            except OSError:
                log.exception("keeping %s: it holds a previous day folder", self._run_dir)
                return
        self._remove_run_dir()

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

    def _path(self, *parts: str) -> str:
        return "/".join(p for p in (self._root, *parts) if p)

    def _os(self, *parts: str) -> str:
        assert self._local_root is not None
        return os.path.join(self._local_root, *parts)

    def _file_name(self, index: int = 0) -> str:
        return f"part-{self.run_id}-{index:05d}.parquet"

    def _start(self) -> None:
        """Open the run: remove what older runs of the same day left in staging."""
        if self._state != "new":
            return
        self._state = "open"
        listing = pafs.FileSelector(self._path(STAGING, self._dt), allow_not_found=True)
        for info in self._fs.get_file_info(listing):
            run = info.base_name
            if info.type != pafs.FileType.Directory or not _RUN_ID.match(run):
                continue
            if run >= self.run_id:
                continue  # a newer run of the same day, still going: not ours to clean
            log.info("removing staging left by run %s of %s", run, self.day)
            try:
                if not self._object_store:
                    self._restore_moved_away(run)
                self._fs.delete_dir(info.path)
            except OSError as exc:
                raise self._error(f"cannot clean an older run up: {exc}", path=info.path) from exc

    def _restore_moved_away(self, run: str) -> None:
        """Put back a published folder that a failed or killed fallback swap renamed away."""
        run_dir = self._os(STAGING, self._dt, run)
        for entry in os.scandir(run_dir) if os.path.isdir(run_dir) else ():
            published = self._os(entry.name.removesuffix(".old"), self._dt)
            if entry.name.endswith(".old") and not os.path.lexists(published):
                log.warning("restoring %s from the interrupted run %s", published, run)
                os.rename(entry.path, published)
                _fsync_dir(os.path.dirname(published))

    def _open(self, f: _StagedFile) -> None:
        if f.writer is None:
            if self._local_root is not None:  # object stores need no folders
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

    def _close(self, table: str, f: _StagedFile) -> TableStats:
        try:
            self._open(f)
            assert f.writer is not None
            if f.pending_rows:
                self._flush(f, whole_groups_only=False)
            f.writer.close()
            local = _local_path(self._fs, f.path)
            if local is not None:
                _fsync_file(local)
                _fsync_dir(os.path.dirname(local))
            size = self._fs.get_file_info(f.path).size or 0
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"closing failed: {exc}", table=table, path=f.path) from exc
        return TableStats(rows=f.rows, files=1, bytes=size)

    def _remove_run_dir(self) -> None:
        if self._fs.get_file_info(self._run_dir).type != pafs.FileType.NotFound:
            self._fs.delete_dir(self._run_dir)
        if self._local_root is not None:  # object stores have no empty folders to remove
            with contextlib.suppress(OSError):  # only once no other run of the day uses it
                os.rmdir(self._os(STAGING, self._dt))

    # -- publishing ------------------------------------------------------------------------

    def _publish_by_swap(self) -> None:
        done: list[tuple[str, str]] = []
        table = ""
        try:
            for table in self._tables:
                done.append((table, self._swap(table)))
        except BaseException as exc:  # ``table`` is the one that failed
            try:
                for t, how in reversed(done):
                    self._unswap(t, how)
            except OSError as undo:
                raise self._error(
                    f"publishing failed ({exc}) and so did undoing it ({undo}): the tables "
                    "before this one may show the new day",
                    table=table,
                ) from exc
            if isinstance(exc, OSError):
                raise self._error(
                    f"swapping the day in failed, nothing published: {exc}",
                    table=table,
                    path=self._os(table, self._dt),
                ) from exc
            raise

    def _folders(self, table: str) -> tuple[str, str]:
        """Where ``table``'s day is staged by this run, and where it is published."""
        return self._os(STAGING, self._dt, self.run_id, table), self._os(table, self._dt)

    def _swap(self, table: str) -> str:
        """Put the staged folder at the published place; returns how, for ``_unswap``."""
        staged, published = self._folders(table)
        os.makedirs(os.path.dirname(published), exist_ok=True)
        if not os.path.lexists(published):
            os.rename(staged, published)
            how = "new"
        elif _exchange(staged, published):
            how = "exchanged"  # the old folder now sits at ``staged``
        else:
            os.rename(published, staged + ".old")
            try:
                os.rename(staged, published)
            except OSError:
                os.rename(staged + ".old", published)  # if this fails too, abort retries it
                raise
            how = "moved"
        _fsync_dir(os.path.dirname(published))
        _fsync_dir(os.path.dirname(staged))
        return how

    def _unswap(self, table: str, how: str) -> None:
        staged, published = self._folders(table)
        if how == "exchanged":
            if not _exchange(staged, published):
                raise OSError(errno.ENOTSUP, "RENAME_EXCHANGE stopped working", published)
        else:
            os.rename(published, staged)
            if how == "moved":
                os.rename(staged + ".old", published)
        _fsync_dir(os.path.dirname(published))

    def _publish_by_copy(self) -> None:
        copied: list[str] = []
        for table, f in self._files.items():
            folder = self._path(table, self._dt)
            try:
                if self._local_root is not None:  # object stores need no folders
                    self._fs.create_dir(folder, recursive=True)
                self._fs.copy_file(f.path, f"{folder}/{self._file_name()}")
                copied.append(f"{folder}/{self._file_name()}")
            except (OSError, pa.ArrowException) as exc:
                for target in copied:
                    with contextlib.suppress(OSError):  # else the next run deletes it
                        self._fs.delete_file(target)
                msg = f"copying the day in failed, nothing published: {exc}"
                raise self._error(msg, table=table, path=folder) from exc
        for table in self._tables:
            folder = self._path(table, self._dt)
            try:
                for info in self._fs.get_file_info(pafs.FileSelector(folder)):
                    if info.type == pafs.FileType.File and info.base_name != self._file_name():
                        self._fs.delete_file(info.path)
            except OSError as exc:
                msg = f"the previous files are not all deleted, the day double counts: {exc}"
                raise self._error(msg, table=table, path=folder) from exc


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


# -- local filesystem helpers ------------------------------------------------------------------


def _local_path(fs: pafs.FileSystem, path: str) -> str | None:
    """The operating-system path behind ``path``, or None when ``fs`` is not a local disk."""
    if isinstance(fs, pafs.LocalFileSystem):
        return path
    if isinstance(fs, pafs.SubTreeFileSystem):
        return _local_path(fs.base_fs, fs.base_path.rstrip("/") + "/" + path.lstrip("/"))
    return None


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    if os.name != "posix":  # folders cannot be opened elsewhere; renames are durable enough
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


def _load_renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28, musl >= 1.2.4
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two existing paths; False where the kernel or filesystem cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), a, None, b)
