"""The warehouse's tables: Delta Lake tables (delta-rs), on a local disk and on ``s3://`` alike.

Layout under the warehouse root (the contract's Data section)::

    <root>/<table>/_delta_log/00000000000000000000.json ...   the table: which files it is
    <root>/<table>/dt=YYYY-MM-DD/part-<run_id>-00000.parquet  data, Hive-partitioned by day

A run writes its day's file of each table straight into the day's folder under a name of its
own (``part-<run_id>-...``): a file that no commit of the log names is invisible to every
reader that reads through the log (Spark, Trino, Athena, DuckDB's ``delta_scan``, Polars,
``coc.duckdb``'s pinned views). Then :meth:`Lake.commit_day` replaces the day in one commit per
table: an overwrite whose partition filter is the day, so the commit removes the day's old
files and adds the new ones, atomically, and never touches another day.

Commits to one table are serialised by the store itself where it can refuse a write that
would replace an existing object (local disks: a rename that does not replace; S3, MinIO,
moto: ``AWS_CONDITIONAL_PUT=etag``). Two commits of different days that race are retried
on the new version by delta-rs (``max_commit_retries``), and by :meth:`commit_day` on top.
Where the store cannot (``COC_S3_CONDITIONAL_PUT=none``, e.g. Huawei OBS: see
``docs/object-storage.md``), the product's own lock serialises the commits of a table: a
Redis lease with ``COC_REDIS_URL`` (every machine), else a file lock (this machine only).

Every commit carries ``coc_run`` and ``coc_day`` in its commit info, so the build can find
the version of a table that a run of a day committed (``warehouse/pinning.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties, create_table_with_add_actions

from pipelines.locks.day import default_lock_dir
from pipelines.settings import ObjectStoreSettings, WarehouseSettings

__all__ = [
    "COMMIT_ATTEMPTS",
    "TABLE_CONFIGURATION",
    "DataFile",
    "Lake",
    "TableSnapshot",
    "delta_schema",
    "file_commit_lock",
    "run_of",
    "storage_options",
    "warehouse_lake",
]

log = logging.getLogger(__name__)

PARTITION = "dt"
_PART_NAME = re.compile(r"(?:^|/)part-(\d{8}T\d{12}Z-[0-9a-f]{8})-\d{5}\.parquet$")
#: commits of a table that race with another writer are retried this many times (each on
#: the newest version) before the run fails
COMMIT_ATTEMPTS = 10
#: retries of one object-store request (each bounded by the settings' timeouts), then an error
MAX_RETRIES = 3
#: the table properties of every table the product creates: a checkpoint every 10 commits
#: (Delta's default is 100), so that opening a table (every run and every build opens each
#: one) reads a checkpoint and at most 9 commits' JSON instead of up to 99: opening a table of
#: 60 days and committing to it cost 5 + 4 ms of CPU instead of 14 + 10 (medians over 120
#: commits)
TABLE_CONFIGURATION = {"delta.checkpointInterval": "10"}


@dataclass(frozen=True)
class DataFile:
    """One data file of a day, written by a run: its path relative to the table, its size,
    its rows and when it was written (epoch milliseconds)."""

    path: str
    size: int
    rows: int
    modified_ms: int


@dataclass(frozen=True)
class TableSnapshot:
    """One version of a table: the files of each day, as paths relative to the table, each
    with a signature that changes whenever the file's content may have (path, size, time)."""

    table: str
    version: int | None
    files: Mapping[date, tuple[str, ...]] = field(default_factory=dict)
    signatures: Mapping[date, str] = field(default_factory=dict)


def delta_schema(schema: pa.Schema) -> pa.Schema:
    """A table's Arrow schema with its partition column, as the Delta table declares it."""
    return schema.append(pa.field(PARTITION, pa.date32()))


def run_of(path: str) -> str | None:
    """The run that wrote a data file, from its name ``part-<run_id>-NNNNN.parquet``."""
    found = _PART_NAME.search(path)
    return found.group(1) if found else None


def storage_options(settings: ObjectStoreSettings | None) -> dict[str, str] | None:
    """delta-rs's options for an ``s3://`` warehouse: credentials, endpoint, addressing,
    timeouts and retries, and how commits are serialised. None for a local disk."""
    if settings is None:
        return None
    options = {
        "AWS_REGION": settings.region or "us-east-1",
        "timeout": f"{settings.request_timeout_s:g}s",
        "connect_timeout": f"{settings.connect_timeout_s:g}s",
        "max_retries": str(MAX_RETRIES),
        "retry_timeout": f"{(MAX_RETRIES + 1) * settings.request_timeout_s:g}s",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "true" if settings.virtual_hosted else "false",
    }
    if settings.access_key_id is not None and settings.secret_access_key is not None:
        options["AWS_ACCESS_KEY_ID"] = settings.access_key_id
        options["AWS_SECRET_ACCESS_KEY"] = settings.secret_access_key
        if settings.session_token is not None:
            options["AWS_SESSION_TOKEN"] = settings.session_token
    if settings.endpoint_url is not None:
        options["AWS_ENDPOINT_URL"] = settings.endpoint_url.rstrip("/")
        if settings.endpoint_url.startswith("http://"):  # loopback only (settings check it)
            options["AWS_ALLOW_HTTP"] = "true"
    if settings.conditional_put:
        options["AWS_CONDITIONAL_PUT"] = "etag"
    else:  # commits are serialised by the product's lock instead (``Lake.commit_lock``)
        options["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"
    return options


class Lake:
    """The Delta tables under one warehouse root (a local folder or ``s3://bucket/prefix``).

    ``options``: delta-rs storage options (``storage_options``); ``commit_lock``: for a store
    that cannot serialise commits itself, a lock around each commit of a table (called with
    the table's URI); None when the store serialises them.
    """

    def __init__(
        self,
        root: str,
        *,
        options: dict[str, str] | None = None,
        commit_lock: Callable[[str], ContextManager[object]] | None = None,
        filesystem: tuple[pafs.FileSystem, str] | None = None,
    ) -> None:
        self.root = root.rstrip("/") if "://" in root else os.path.abspath(root)
        self.options = options
        self._commit_lock = commit_lock
        #: pyarrow's filesystem of the root and the root's path in it (deleting files)
        self.filesystem = filesystem or (pafs.LocalFileSystem(), self.root)

    def __repr__(self) -> str:  # the options hold credentials
        return f"Lake({self.root!r})"

    def uri(self, table: str) -> str:
        return f"{self.root}/{table}"

    def exists(self, table: str) -> bool:
        return DeltaTable.is_deltatable(self.uri(table), storage_options=self.options)

    def open(
        self, table: str, *, version: int | None = None, as_of: datetime | None = None
    ) -> DeltaTable | None:
        """The table at its newest version (or ``version``, or as of ``as_of``); None when
        it does not exist (yet, or at that time)."""
        try:
            found = DeltaTable(self.uri(table), version=version, storage_options=self.options)
        except TableNotFoundError:
            return None
        if as_of is not None:
            try:
                found.load_as_version(as_of)
            except DeltaError as exc:
                if "older" in str(exc).lower() or "earliest" in str(exc).lower():
                    return None
                raise
        return found

    # -- writing ---------------------------------------------------------------------------

    def commit_day(
        self,
        table: str,
        schema: pa.Schema,
        day: date,
        files: Sequence[DataFile],
        *,
        run_id: str,
        current: DeltaTable | None = None,
    ) -> None:
        """Replace ``day`` of ``table`` by ``files`` in one commit.

        The files must be in place already (under ``dt=<day>/``). Creates the table on its
        first commit. ``current``: the table as the caller opened it (``open``), which the
        first attempt brings up to date (reading only the log's newer entries) instead of
        reading the whole log again. A commit that loses
        a race to another writer (another day) is retried on the newest version: the caller
        holds the day's lock, so the day's own files cannot have changed meanwhile.
        """
        partition = day.isoformat()
        adds = [
            AddAction(
                path=f.path,
                size=f.size,
                partition_values={PARTITION: partition},
                modification_time=f.modified_ms,
                data_change=True,
                stats=json.dumps({"numRecords": f.rows}),
            )
            for f in files
        ]
        properties = CommitProperties(
            custom_metadata={"coc_run": run_id, "coc_day": partition},
            max_commit_retries=COMMIT_ATTEMPTS,
        )
        full = delta_schema(schema)
        uri = self.uri(table)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            with self._locked(uri):
                if attempt == 1 and current is not None:  # read its newer versions only,
                    current.update_incremental()  # under the commit lock if there is one
                else:
                    current = self.open(table)
                try:
                    if current is None:
                        create_table_with_add_actions(
                            uri,
                            _delta_schema_of(full),
                            adds,
                            mode="error",
                            partition_by=[PARTITION],
                            configuration=TABLE_CONFIGURATION,
                            storage_options=self.options,
                            commit_properties=properties,
                        )
                        return
                    current.create_write_transaction(
                        list(adds),
                        mode="overwrite",
                        schema=full,
                        partition_by=[PARTITION],
                        partition_filters=[(PARTITION, "=", partition)],
                        commit_properties=properties,
                    )
                    return
                except (CommitFailedError, DeltaError) as exc:
                    if attempt == COMMIT_ATTEMPTS or not _is_race(exc):
                        raise
                    log.info("%s: commit of %s raced another writer; again", table, day)
            time.sleep(min(0.05 * attempt, 0.5))
        raise AssertionError("unreachable")

    def delete_days_before(self, table: str, first_kept: date, *, run_id: str) -> list[date]:
        """Remove every day of ``table`` before ``first_kept`` in one commit (the days'
        files leave the log; the vacuum deletes them later); returns the days removed. A
        commit that loses a race to another writer is retried on the newest version."""
        properties = CommitProperties(
            custom_metadata={"coc_run": run_id, "coc_delete_before": first_kept.isoformat()},
            max_commit_retries=COMMIT_ATTEMPTS,
        )
        uri = self.uri(table)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            with self._locked(uri):
                current = self.open(table)
                if current is None:
                    return []
                doomed = sorted(d for d in snapshot_of(table, current).files if d < first_kept)
                if not doomed:
                    return []
                try:
                    current.delete(
                        f"{PARTITION} < '{first_kept.isoformat()}'",
                        commit_properties=properties,
                    )
                    return doomed
                except (CommitFailedError, DeltaError) as exc:
                    if attempt == COMMIT_ATTEMPTS or not _is_race(exc):
                        raise
                    log.info("%s: delete before %s raced another writer; again", table, first_kept)
            time.sleep(min(0.05 * attempt, 0.5))
        raise AssertionError("unreachable")

    def commit_locked(self, table: str) -> ContextManager[None]:
        """The lock around a commit of ``table`` (a no-op where the store serialises commits
        itself): for a commit made elsewhere, such as the table's creation."""
        return self._locked(self.uri(table))

    @contextlib.contextmanager
    def _locked(self, uri: str) -> Iterator[None]:
        if self._commit_lock is None:
            yield
            return
        with self._commit_lock(uri):
            yield

    def delete_file(self, table: str, path: str) -> None:
        """Delete a data file of ``table`` (a path relative to the table, or its URI)."""
        fs, base = self.filesystem
        relative = path.removeprefix(self.uri(table) + "/")
        with contextlib.suppress(FileNotFoundError):
            fs.delete_file(f"{base}/{table}/{relative}")

    # -- reading ---------------------------------------------------------------------------

    def snapshot(
        self, table: str, *, version: int | None = None, as_of: datetime | None = None
    ) -> TableSnapshot:
        """The files of each day of ``table`` at its newest version (or the one asked)."""
        found = self.open(table, version=version, as_of=as_of)
        if found is None:
            return TableSnapshot(table=table, version=None)
        return snapshot_of(table, found)

    def day_rows(self, table: str, day: date, *, found: DeltaTable | None = None) -> int | None:
        """The rows ``day`` holds in ``table`` now (from the log's statistics), None when the
        day was never published. ``found``: the table as the caller just opened it."""
        if found is None:
            found = self.open(table)
        if found is None:
            return None
        actions = pa.table(found.get_add_actions(flatten=True))
        partition = actions.column(f"partition.{PARTITION}").to_pylist()
        records = actions.column("num_records").to_pylist()
        counts = [int(n or 0) for p, n in zip(partition, records, strict=True) if _day(p) == day]
        return sum(counts) if counts else None

    def version_of_run(
        self, table: str, *, run_id: str, day: date, found: DeltaTable | None = None
    ) -> int | None:
        """The version of ``table`` that the run ``run_id`` of ``day`` committed, if any
        (``found``: the table as the caller opened it, whose history is read)."""
        if found is None:
            found = self.open(table)
        if found is None:
            return None
        for commit in found.history():
            if commit.get("coc_run") == run_id and commit.get("coc_day") == day.isoformat():
                return int(commit["version"])
        return None


def snapshot_of(table: str, found: DeltaTable) -> TableSnapshot:
    actions = pa.table(found.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    sizes = actions.column("size_bytes").to_pylist()
    times = actions.column("modification_time").to_pylist()
    days = actions.column(f"partition.{PARTITION}").to_pylist()
    by_day: dict[date, list[tuple[str, str]]] = {}
    for path, size, modified, day in zip(paths, sizes, times, days, strict=True):
        stamp = modified.timestamp() if isinstance(modified, datetime) else modified
        by_day.setdefault(_day(day), []).append((path, f"{path}|{size}|{stamp}"))
    return TableSnapshot(
        table=table,
        version=found.version(),
        files={d: tuple(sorted(p for p, _ in fs)) for d, fs in by_day.items()},
        signatures={d: "\n".join(sorted(s for _, s in fs)) for d, fs in by_day.items()},
    )


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _delta_schema_of(schema: pa.Schema) -> Any:
    from deltalake import Schema

    return Schema.from_arrow(schema)


def _is_race(exc: Exception) -> bool:
    """Whether a commit failed because another writer committed first (worth again)."""
    text = str(exc).lower()
    return isinstance(exc, CommitFailedError) or any(
        word in text for word in ("conflict", "already exists")
    )


@contextlib.contextmanager
def file_commit_lock(uri: str, lock_dir: str | None = None) -> Iterator[None]:
    """This machine's lock around the commits of the table at ``uri``."""
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    folder = lock_dir or default_lock_dir()
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, f"commit-{key}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def warehouse_lake(wh: WarehouseSettings, *, lock_dir: str | None = None) -> Lake:
    """The Delta tables of the warehouse ``wh`` names, with its storage options and, where
    the store cannot serialise commits, the product's commit lock (Redis with
    ``COC_REDIS_URL``, else this machine's file lock)."""
    store = wh.object_store
    if store is None:
        return Lake(wh.warehouse)
    from pipelines.lake.objectstore import S3Location, s3_filesystem

    lock: Callable[[str], ContextManager[object]] | None = None
    if not store.conditional_put:
        redis_url = wh.redis_url
        if redis_url is not None:

            def lock(uri: str) -> ContextManager[object]:
                from pipelines.locks.shared import SharedLease

                key = "coc:commit:" + hashlib.sha256(uri.encode()).hexdigest()[:16]
                return SharedLease(redis_url, key=key, what=f"the commits of {uri}")

        else:

            def lock(uri: str) -> ContextManager[object]:
                return file_commit_lock(uri, lock_dir)

    return Lake(
        wh.warehouse,
        options=storage_options(store),
        commit_lock=lock,
        filesystem=(s3_filesystem(store), S3Location.parse(wh.warehouse).path),
    )
