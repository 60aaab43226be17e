"""Turning a warehouse of plain Hive folders into Delta tables, in place, asking the API nothing.

Before the tables were Delta tables, a warehouse held, per table, ``dt=YYYY-MM-DD/`` folders of
Parquet files: on a local disk exactly the day's files (a folder was swapped in whole); on
``s3://`` the objects that the day's manifest (``_manifests/dt=YYYY-MM-DD.json``) named, next
to superseded ones not swept yet. :func:`ensure_tables` makes each table a Delta table whose
first commit (version 0) adds exactly those files, where they are: nothing is copied or
rewritten, so the tables and the marts built over them are what they were. A table without
any data yet is created empty, so that every later run finds its table and commits to it.

It runs at the start of every run that writes (``pipelines/lake/day_writer.py``) and of every build,
costs one check per table once migrated, and ``coc-etl migrate`` runs it on purpose. Two
processes that migrate at once both list the same files; the first commit wins and the other
finds the table made. The old manifests are left in place (nothing reads them any more).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import Schema
from deltalake.transaction import AddAction, CommitProperties, create_table_with_add_actions

from pipelines.lake.tables import PARTITION, TABLE_CONFIGURATION, Lake, delta_schema
from pipelines.transform.schemas import TABLES

__all__ = ["MIGRATION_RUN", "ensure_tables"]

log = logging.getLogger(__name__)

#: the ``coc_run`` of the migration's commit
MIGRATION_RUN = "migration"
MANIFESTS = "_manifests"
_DAY_FOLDER = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
_MANIFEST = re.compile(r"^dt=\d{4}-\d{2}-\d{2}\.json$")


def ensure_tables(lake: Lake, tables: Mapping[str, pa.Schema] = TABLES) -> dict[str, int]:
    """Make each of ``tables`` a Delta table, migrating the files already there; returns the
    files each migrated table took in (tables that were Delta tables already are left out)."""
    missing = [t for t in tables if not lake.exists(t)]
    if not missing:
        return {}
    fs, base = lake.filesystem
    named = _manifest_files(fs, base)
    done: dict[str, int] = {}
    for table in missing:
        # under the commit lock: on a store that cannot refuse an overwrite, two processes
        # creating the table at once would both write its first version
        with lake.commit_locked(table):
            if lake.exists(table):  # another process made it meanwhile
                continue
            adds = _existing_files(fs, base, table, named)
            try:
                create_table_with_add_actions(
                    lake.uri(table),
                    Schema.from_arrow(delta_schema(tables[table])),
                    adds,
                    mode="error",
                    partition_by=[PARTITION],
                    configuration=TABLE_CONFIGURATION,
                    storage_options=lake.options,
                    # never retried: a creation that lost the race to another process
                    # would be committed again on top of the winner's (a second creation)
                    commit_properties=CommitProperties(
                        custom_metadata={"coc_run": MIGRATION_RUN, "coc_day": ""},
                        max_commit_retries=0,
                    ),
                )
            except Exception:
                if not lake.exists(table):  # else another process migrated it first
                    raise
                continue
        if adds:
            log.info("migrated %s to a Delta table: %d files, in place", table, len(adds))
        done[table] = len(adds)
    return done


def _existing_files(
    fs: pafs.FileSystem, base: str, table: str, named: set[str] | None
) -> list[AddAction]:
    """The published files of ``table`` (``named``: only those the manifests name)."""
    adds: list[AddAction] = []
    folders = fs.get_file_info(pafs.FileSelector(f"{base}/{table}", allow_not_found=True))
    for folder in sorted(folders, key=lambda i: i.base_name):
        day = _DAY_FOLDER.match(folder.base_name)
        if folder.type != pafs.FileType.Directory or not day:
            continue
        for info in sorted(
            fs.get_file_info(pafs.FileSelector(folder.path)), key=lambda i: i.base_name
        ):
            relative = f"{folder.base_name}/{info.base_name}"
            if info.type != pafs.FileType.File or not info.base_name.endswith(".parquet"):
                continue
            if info.base_name.startswith(("_", ".")):
                continue
            if named is not None and f"{table}/{relative}" not in named:
                continue  # superseded on object storage, not swept yet
            with fs.open_input_file(info.path) as f:
                rows = pq.ParquetFile(f).metadata.num_rows
            adds.append(
                AddAction(
                    path=relative,
                    size=int(info.size or 0),
                    partition_values={PARTITION: day.group(1)},
                    modification_time=int(info.mtime_ns // 1_000_000) if info.mtime_ns else 0,
                    data_change=True,
                    stats=json.dumps({"numRecords": rows}),
                )
            )
    return adds


def _manifest_files(fs: pafs.FileSystem, base: str) -> set[str] | None:
    """The files the old day manifests name (relative to the root), None without manifests."""
    selector = pafs.FileSelector(f"{base}/{MANIFESTS}", allow_not_found=True)
    manifests = [i for i in fs.get_file_info(selector) if _MANIFEST.match(i.base_name) and i.size]
    if not manifests:
        return None
    named: set[str] = set()
    for info in manifests:
        with fs.open_input_stream(info.path) as f:
            body = json.loads(f.read())
        for paths in body["tables"].values():
            named.update(str(p) for p in paths)
    return named
