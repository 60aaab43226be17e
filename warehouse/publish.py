"""Copy-on-write publishing of ``coc.duckdb``: where it may go, the swap, a crashed build's debris.

The build works on a copy of the previous file (a new file for a full rebuild) next to its
final place and swaps it in with ``os.replace``, so a BI tool opening it sees the old
database or the new one, readers keep reading during the build, and a failed build leaves
the previous file as it was.

The file belongs to the pipeline, and the pipeline replaces only a file it wrote: every build
stamps the file with ``mart_data.written_by`` (files of builds from before the stamp carry
``mart_data.build_state``), and a ``COC_DUCKDB`` that exists without either (an analyst's
own DuckDB database, a text file, a Parquet file, an empty file) is refused with a
``ForeignFileError`` naming it (exit 2), before the run fetches anything and again just
before the swap; the file is not touched. Publishing takes a shared ``fcntl`` lock on the old file
first, the lock DuckDB's own read-only connections take: it cannot be had while a process
holds the file open read-write (DuckDB holds an exclusive lock then), and while it is held no
process can open the file read-write. So the old file's write-ahead log is removed and the
new file swapped in only when no writer can touch either; a live writer fails the build
with a ``WarehouseBusyError`` naming its process, and the file is left as it was. Readers
keep reading (their copy is the old file). Build files left by a killed build
(``coc.duckdb.tmp-<pid>-<thread>`` and its ``.wal``) are removed by the next build once
their process is gone.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import struct
from pathlib import Path

import duckdb

from pipelines.errors import StorageError, UsageError

#: folders of the kernel, not of data: a DuckDB file there cannot be written
_NOT_DATA = ("/proc", "/sys", "/dev")

_FLOCK = "hhqqi"  # struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid


#: The table each build writes into the file: the mark that the pipeline wrote it.
OWNER_TABLE = ("mart_data", "written_by")
#: What the files of builds from before the mark carry (the incremental build's state).
LEGACY_OWNER_TABLE = ("mart_data", "build_state")
_OWNER_NOTE = (
    "coc-etl builds this file and replaces it whole at every build: keep your own tables in "
    "your own DuckDB file, which can ATTACH this one read-only"
)


class BuildError(StorageError):
    """The DuckDB file cannot be built or published where it was asked for."""


class ForeignFileError(UsageError, BuildError):
    """``COC_DUCKDB`` names a file the pipeline did not write; it is left as it is (exit 2)."""


class WarehouseBusyError(BuildError):
    """Another process holds the DuckDB file open read-write."""


def check_build_target(duckdb_path: str) -> Path:
    """The DuckDB file's path, once it is known the build can publish there.

    Checked before a run fetches anything: the path is not a folder, not under ``/proc``,
    ``/sys`` or ``/dev``, its folder exists (it is created) and takes new files, no process
    holds the current file open read-write, and the current file, if any, is one the pipeline
    wrote (``ForeignFileError`` otherwise).
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
    check_ours(target, name=f"COC_DUCKDB={duckdb_path!r}")
    return target


def stamp_ours(con: duckdb.DuckDBPyConnection) -> None:
    """Mark the database being built as the pipeline's own (``OWNER_TABLE``)."""
    schema, table = OWNER_TABLE
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(
        f"CREATE OR REPLACE TABLE {schema}.{table} AS SELECT 'coc-etl' AS product, ? AS note",
        [_OWNER_NOTE],
    )


def not_ours(path: Path) -> str | None:
    """Why the file at ``path`` is not one the pipeline wrote, or None (it is, or is absent)."""
    try:
        with open(path, "rb") as file:
            head = file.read(16)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if head[8:12] != b"DUCK":
        if not head:
            return "it is an empty file, not a DuckDB database"
        if head[:4] == b"PAR1":
            return "it is a Parquet file, not a DuckDB database"
        return "it is not a DuckDB database"
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"it is a DuckDB database that does not open ({first})"
    try:
        tables = set(con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall())
    finally:
        con.close()
    if OWNER_TABLE in tables or LEGACY_OWNER_TABLE in tables:
        return None
    return (
        "it is a DuckDB database that coc-etl did not build "
        f"(it lacks the table {'.'.join(OWNER_TABLE)})"
    )


def check_ours(target: Path, *, name: str) -> None:
    """Raise ``ForeignFileError`` unless the file at ``target`` is absent or the pipeline's."""
    reason = not_ours(target)
    if reason is not None:
        raise ForeignFileError(
            f"{name}: {reason}; coc-etl replaces only a file it built, so it left {target} as "
            "it is: point COC_DUCKDB at another file (or move this one away)"
        )


def remove_debris(target: Path) -> list[Path]:
    """Remove the build files (``<name>.tmp-<pid>-<thread>``, its ``.wal`` and its ``.tmp``
    spill folder) of dead processes."""
    pattern = re.compile(re.escape(target.name) + r"\.tmp-(\d+)-\d+(\.wal|\.tmp)?$")
    removed = []
    for path in target.parent.glob(f"{target.name}.tmp-*"):
        found = pattern.match(path.name)
        if found is None or _alive(int(found.group(1))):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
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


def publish(tmp: Path, target: Path) -> None:
    """Swap ``tmp`` in at ``target`` while no process can write the old file, if the old file
    is still the pipeline's (checked first: closing the check's connection would drop this
    process's lock on the file)."""
    writer = _writer_pid(target)  # a writer's lock would also keep the check from opening it
    if writer is not None:
        raise _busy(target, writer)
    check_ours(target, name=str(target))
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


def remove_database(path: Path) -> None:
    path.unlink(missing_ok=True)
    Path(f"{path}.wal").unlink(missing_ok=True)
