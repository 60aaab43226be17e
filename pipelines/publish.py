"""Publishing a staged day: one ``Publisher`` per storage kind, each all tables or none.

A :class:`~pipelines.parquet.DayWriter` stages one run's day, then hands it to its publisher
(``pipelines.parquet.publisher_for`` picks one from the warehouse root; tests inject their
own)::

    <root>/_staging/dt=YYYY-MM-DD/<run_id>/<table>/part-<run_id>-00000.parquet   staged
    <root>/<table>/dt=YYYY-MM-DD/part-<run_id>-00000.parquet                     published

The writer holds the day's lock (``pipelines/daylock.py``) from before it stages until after
it published, so no other run publishes or cleans the same day meanwhile.

The publish protocol:

- :class:`LocalSwap`, a local filesystem: the staged files and folders are ``fsync``-ed
  already; each table's staged folder is swapped with its published ``dt=`` folder. On Linux
  this is ``renameat2(RENAME_EXCHANGE)``: one atomic step, readers see the old folder or the
  new one, never a mix nor nothing. Where the kernel or filesystem lacks it, the old folder
  is renamed away to ``<table>.old`` in the run's staging and the new one renamed in; between
  those two renames the table's day is briefly absent, and if the process dies right there,
  ``recover`` (called by the next writer of the day, once the dead run's lock is free) renames
  ``<table>.old`` back before the debris is deleted. A failed swap is undone, and the tables
  already swapped are swapped back, before the error is raised.
- :class:`~pipelines.day_manifests.ManifestPublish`, object storage (no rename): the staged
  objects are copied in under unique names and the day's manifest, written last in one PUT,
  is the commit; readers read the objects a manifest names, never a listing. Its protocol
  is written at the top of ``pipelines/day_manifests.py``.

``pipelines.parquet.publisher_for`` picks the publisher from the warehouse root. LocalSwap
publishes tables one after another, each atomically; a kill between two tables leaves some
at the new version and some at the old, each whole, until the day is run again.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import errno
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pyarrow.fs as pafs

from pipelines.write_errors import WriteError

__all__ = [
    "HAS_EXCHANGE",
    "STAGING",
    "LocalSwap",
    "Publisher",
    "StagedDay",
    "local_path",
    "rename_exchange",
]

log = logging.getLogger(__name__)

STAGING = "_staging"


@dataclass(frozen=True, kw_only=True)
class StagedDay:
    """One run's day under a warehouse root: where it is staged, where it is published."""

    root: str
    day: dt.date
    run_id: str
    tables: tuple[str, ...]

    @property
    def partition(self) -> str:
        return f"dt={self.day.isoformat()}"

    @property
    def day_staging(self) -> str:
        """The folder of every run's staging of this day."""
        return f"{self.root}/{STAGING}/{self.partition}"

    @property
    def run_dir(self) -> str:
        return f"{self.day_staging}/{self.run_id}"

    @property
    def file_name(self) -> str:
        return f"part-{self.run_id}-00000.parquet"

    def staged(self, table: str) -> str:
        return f"{self.run_dir}/{table}"

    def published(self, table: str) -> str:
        return f"{self.root}/{table}/{self.partition}"

    def error(
        self, message: str, *, table: str | None = None, path: str | None = None
    ) -> WriteError:
        return WriteError(message, table=table, day=self.day, path=path)


class Publisher(Protocol):
    """Puts a staged day in place of the published one; one implementation per storage kind."""

    @property
    def fs(self) -> pafs.FileSystem:
        """The filesystem of the warehouse (staging is written through it too)."""

    @property
    def root(self) -> str:
        """The warehouse root inside ``fs``."""

    @property
    def local_root(self) -> str | None:
        """The operating-system path of ``root`` when it is on a local disk, else None."""

    @property
    def location(self) -> str:
        """The warehouse for humans and lock files: a path or a URI."""

    def publish(self, staged: StagedDay) -> None:
        """Publish every table of ``staged``; on failure leave the published day as it was."""

    def recover(self, staged: StagedDay) -> None:
        """Undo what an interrupted ``publish`` of ``staged`` left, before its staging goes."""


# -- local filesystem --------------------------------------------------------------------------


class LocalSwap:
    """A local folder: each table's staged folder is swapped with its published folder.

    ``exchange`` and ``rename`` are the two filesystem steps; tests pass failing or stalling
    ones. ``exchange`` returns False where the kernel or filesystem cannot exchange, and the
    rename-away fallback runs instead.
    """

    def __init__(
        self,
        root: str,
        *,
        exchange: Callable[[str, str], bool] | None = None,
        rename: Callable[[str, str], None] = os.rename,
    ) -> None:
        self.root = self.local_root = self.location = os.path.abspath(root)
        self.fs: pafs.FileSystem = pafs.LocalFileSystem()
        self._exchange = exchange or rename_exchange
        self._rename = rename

    def publish(self, staged: StagedDay) -> None:
        done: list[tuple[str, str]] = []
        table = ""
        try:
            for table in staged.tables:
                done.append((table, self._swap(staged, table)))
        except BaseException as exc:  # ``table`` is the one that failed
            try:
                for t, how in reversed(done):
                    self._unswap(staged, t, how)
            except OSError as undo:
                raise staged.error(
                    f"publishing failed ({exc}) and so did undoing it ({undo}): the tables "
                    "before this one may show the new day",
                    table=table,
                ) from exc
            if isinstance(exc, OSError):
                raise staged.error(
                    f"swapping the day in failed, nothing published: {exc}",
                    table=table,
                    path=staged.published(table),
                ) from exc
            raise

    def recover(self, staged: StagedDay) -> None:
        """Put back a published folder that a failed or killed fallback swap renamed away."""
        run_dir = staged.run_dir
        for entry in os.scandir(run_dir) if os.path.isdir(run_dir) else ():
            published = staged.published(entry.name.removesuffix(".old"))
            if entry.name.endswith(".old") and not os.path.lexists(published):
                log.warning("restoring %s from the interrupted run %s", published, staged.run_id)
                self._rename(entry.path, published)
                fsync_dir(os.path.dirname(published))

    def _swap(self, staged: StagedDay, table: str) -> str:
        """Put the staged folder at the published place; returns how, for ``_unswap``."""
        new, published = staged.staged(table), staged.published(table)
        os.makedirs(os.path.dirname(published), exist_ok=True)
        if not os.path.lexists(published):
            self._rename(new, published)
            how = "new"
        elif self._exchange(new, published):
            how = "exchanged"  # the old folder now sits at ``new``
        else:
            self._rename(published, new + ".old")
            try:
                self._rename(new, published)
            except OSError:
                self._rename(new + ".old", published)  # if this fails too, recover retries it
                raise
            how = "moved"
        fsync_dir(os.path.dirname(published))
        fsync_dir(os.path.dirname(new))
        return how

    def _unswap(self, staged: StagedDay, table: str, how: str) -> None:
        new, published = staged.staged(table), staged.published(table)
        if how == "exchanged":
            if not self._exchange(new, published):
                raise OSError(errno.ENOTSUP, "RENAME_EXCHANGE stopped working", published)
        else:
            self._rename(published, new)
            if how == "moved":
                self._rename(new + ".old", published)
        fsync_dir(os.path.dirname(published))


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
#: whether this platform's C library has ``renameat2`` (the filesystem may still refuse it)
HAS_EXCHANGE = _renameat2 is not None


def rename_exchange(a: str, b: str) -> bool:
    """Atomically swap two existing paths; False where the kernel or filesystem cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), a, None, b)
