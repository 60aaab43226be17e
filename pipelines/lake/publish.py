"""Publishing a written day: one Delta commit per table, the instances' table first.

A :class:`~pipelines.lake.day_writer.DayWriter` writes one run's file of each table straight into
the
table's day folder, under the run's own name (invisible to readers until committed)::

    <root>/<table>/dt=YYYY-MM-DD/part-<run_id>-00000.parquet

then hands them to its :class:`DeltaPublish`, which first checks the shrink guard (a day must
not lose more than ``max_shrink`` of its published instances unless ``allow_shrink``), then
commits each table's day (``pipelines/lake/tables.py``: an overwrite of the day's partition). The
tables are committed in the writer's order, ``order_batches`` last: the build of
``coc.duckdb`` reads that table first and pins the other two to the same run of each day
(``warehouse/pinning.py``), so a run killed between two commits never shows ``coc.duckdb``
a day mixed from two runs. Engines that read one table through its log see each table's day
whole at every moment.

The writer holds the day's lock (``pipelines/locks/day.py``) from before it writes until after
it published, so no other run writes the same day meanwhile. A file that was written but not
committed (an aborted run's, or a killed one's) is named by no commit: an aborted run
deletes its own, and the vacuum (``warehouse/vacuum.py``) removes a killed run's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import DeltaTable

from pipelines.errors import ShrinkRefusedError, WriteError
from pipelines.lake.tables import DataFile, Lake

__all__ = [
    "INSTANCES",
    "MARKER",
    "STAGING",
    "DeltaPublish",
    "ShrinkGuard",
    "StagedDay",
    "commit_order",
    "fsync_dir",
    "fsync_file",
    "local_path",
]

log = logging.getLogger(__name__)

#: where a local warehouse keeps its day locks (``_staging/dt=YYYY-MM-DD/.lock``)
STAGING = "_staging"
#: the table whose rows the shrink guard counts
INSTANCES = "execution_instances"
#: the table a run commits last: its day names the run whose tables ``coc.duckdb`` pins
MARKER = "order_batches"


def commit_order(tables: tuple[str, ...]) -> list[str]:
    """The tables in the order a run commits them: as given, ``MARKER`` last."""
    return [t for t in tables if t != MARKER] + [t for t in tables if t == MARKER]


@dataclass(frozen=True, kw_only=True)
class StagedDay:
    """One run's day under a warehouse root: where its files are written."""

    root: str
    day: dt.date
    run_id: str
    tables: tuple[str, ...]

    @property
    def partition(self) -> str:
        return f"dt={self.day.isoformat()}"

    @property
    def day_staging(self) -> str:
        """The folder of the day's lock on a local warehouse."""
        return f"{self.root}/{STAGING}/{self.partition}"

    @property
    def file_name(self) -> str:
        return f"part-{self.run_id}-00000.parquet"

    def folder(self, table: str) -> str:
        """The day's folder of ``table``, where this run writes its file."""
        return f"{self.root}/{table}/{self.partition}"

    def path(self, table: str) -> str:
        return f"{self.folder(table)}/{self.file_name}"

    def relative(self, table: str) -> str:
        """The file's path inside its table, as the Delta log names it."""
        return f"{self.partition}/{self.file_name}"

    def error(
        self, message: str, *, table: str | None = None, path: str | None = None
    ) -> WriteError:
        return WriteError(message, table=table, day=self.day, path=path)


@dataclass(frozen=True, kw_only=True)
class ShrinkGuard:
    """A day may lose at most ``max_shrink`` (a share) of its published instances, and never
    all of them, unless ``allow`` (``COC_ALLOW_SHRINK``, ``coc-etl ingest --allow-shrink``)."""

    max_shrink: float = 0.5
    allow: bool = False

    def check(self, day: dt.date, published: int | None, new: int) -> None:
        if self.allow or not published or new >= published:
            return
        if new == 0 or published - new > self.max_shrink * published:
            raise ShrinkRefusedError(day=day, published=published, new=new, limit=self.max_shrink)


class DeltaPublish:
    """Commits a written day to the warehouse's Delta tables (``lake``), through ``fs``, the
    filesystem the day's files are written with (pyarrow's; a path inside it is ``root``)."""

    def __init__(
        self,
        lake: Lake,
        fs: pafs.FileSystem,
        root: str,
        *,
        shrink: ShrinkGuard | None = None,
    ) -> None:
        self.lake, self.fs, self.root = lake, fs, root.rstrip("/")
        self.local_root = local_path(fs, self.root)
        self.location = lake.root
        self.shrink = shrink or ShrinkGuard()
        #: the tables each run (by id) committed so far
        self.committed: dict[str, set[str]] = {}

    def publish(
        self, staged: StagedDay, files: Mapping[str, DataFile], schemas: Mapping[str, pa.Schema]
    ) -> None:
        """Commit every table's file of ``staged`` (its schema in ``schemas``); the shrink
        guard first."""
        committed = self.committed.setdefault(staged.run_id, set())
        opened: DeltaTable | None = None  # the instances' table, read once for both uses
        if INSTANCES in files:
            try:
                opened = self.lake.open(INSTANCES)
                published = self.lake.day_rows(INSTANCES, staged.day, found=opened)
            except Exception as exc:  # delta-rs's errors are not OSErrors
                raise staged.error(
                    f"cannot read the published day: {exc}", table=INSTANCES
                ) from exc
            self.shrink.check(staged.day, published, files[INSTANCES].rows)
        for table in commit_order(staged.tables):
            try:
                self.lake.commit_day(
                    table,
                    schemas[table],
                    staged.day,
                    [files[table]],
                    run_id=staged.run_id,
                    current=opened if table == INSTANCES else None,
                )
            except Exception as exc:
                done = ", ".join(sorted(committed)) or "none"
                raise staged.error(
                    f"committing the day failed (tables committed before: {done}): {exc}",
                    table=table,
                    path=self.lake.uri(table),
                ) from exc
            committed.add(table)
        del self.committed[staged.run_id]

    def discard(self, staged: StagedDay) -> None:
        """Delete this run's files that no commit names (an aborted run's)."""
        committed = self.committed.pop(staged.run_id, set())
        for table in staged.tables:
            if table in committed:
                continue
            with contextlib.suppress(FileNotFoundError):
                self.fs.delete_file(staged.path(table))


# -- local filesystem helpers ------------------------------------------------------------------


def local_path(fs: pafs.FileSystem, path: str) -> str | None:
    """The operating-system path behind ``path``, or None when ``fs`` is not a local disk."""
    if isinstance(fs, pafs.LocalFileSystem):
        return path
    if isinstance(fs, pafs.SubTreeFileSystem):
        return local_path(fs.base_fs, fs.base_path.rstrip("/") + "/" + path.lstrip("/"))
    return None


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    if os.name != "posix":  # folders cannot be opened elsewhere; renames are durable enough
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
