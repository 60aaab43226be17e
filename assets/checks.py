"""Data checks of one published day, read back from the Parquet that landed.

``CHECKS`` is the list of checks (name, asset, description), the one table that both the
Dagster asset checks (``assets/ingestion.py``) and these functions read; ``WAREHOUSE_CHECKS``
the same for the warehouse asset (``assets/warehouse.py``). ``day_checks`` runs
every one of them and returns a ``CheckOutcome`` for each; the Dagster assets turn them into
asset check results. They read the published files (not what the run meant to write), so a
check that passes says something about what readers will see.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.coc.models import INSTANCE_STATUSES
from pipelines.ingest import DayResult
from pipelines.lake.objectstore import S3Location, s3_filesystem
from pipelines.lake.tables import Lake, storage_options
from pipelines.settings import ObjectStoreSettings
from pipelines.transform.schemas import TABLES

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Check:
    """One data check: its name, the asset it checks, and what it asserts."""

    name: str
    asset: str
    description: str


KEYS_UNIQUE = Check(
    "keys_unique", "execution_instances", "(execute_uuid, batch_index, instance_id) unique"
)
STATUSES_VALID = Check(
    "statuses_valid", "execution_instances", "every status in the documented enum"
)
FINISHED_AFTER_CREATED = Check(
    "finished_after_created", "execution_instances", "finished_at >= created_at"
)
BATCH_COUNTS_MATCH = Check(
    "batch_counts_match", "order_batches", "rows per batch equal its total_instances"
)
TICKET_COUNT_MATCHES_LIST = Check(
    "ticket_count_matches_list", "script_orders", "tickets equal the list's total"
)
SCHEMA_AS_DOCUMENTED = Check(
    "schema_as_documented",
    "execution_instances",
    "Warns when the API sent what its documented schema does not say (unexpected fields, "
    "missing mapped fields, changed types): the day's schema_drift rows. A warning: the run "
    "succeeded and the archive keeps every field.",
)
#: Every check of a day, in the order ``day_checks`` runs them.
CHECKS = (
    KEYS_UNIQUE,
    STATUSES_VALID,
    FINISHED_AFTER_CREATED,
    BATCH_COUNTS_MATCH,
    TICKET_COUNT_MATCHES_LIST,
    SCHEMA_AS_DOCUMENTED,
)
#: The check of the whole warehouse, run by its asset after each build (a warning, never a
#: failure: ``assets/warehouse.py`` from ``warehouse.report.newest_alerts``).
NO_FAILURE_SHIFTS = Check(
    "no_failure_shifts_on_newest_day",
    "warehouse",
    "Warns when failure_shifts alerts on the newest day: each key failing more than in the "
    "7 days before, with its rate against the baseline and since when.",
)
WAREHOUSE_CHECKS = (NO_FAILURE_SHIFTS,)


@dataclass
class CheckOutcome:
    """What one check found on one day."""

    check: Check
    passed: bool
    description: str
    warn_only: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def asset(self) -> str:
        return self.check.asset


def read_day(
    root: str,
    table: str,
    day: str,
    columns: list[str] | None,
    *,
    limit: int | None = None,
    object_store: ObjectStoreSettings | None = None,
) -> pa.Table:
    """The published rows of one table's day (only ``columns``; the first ``limit`` rows).

    The files the table's newest Delta version names for the day, never a listing of the
    folder (it may still hold superseded files until they are vacuumed).
    """
    import pyarrow.dataset as ds  # here: loading it loads pandas, a second at every import

    fs: pafs.FileSystem
    if object_store is not None:
        fs, base = s3_filesystem(object_store), S3Location.parse(root).path
        lake = Lake(S3Location.parse(root).uri, options=storage_options(object_store))
    else:
        fs, base = pafs.LocalFileSystem(), os.path.abspath(root)
        lake = Lake(base)
    named = lake.snapshot(table).files.get(date.fromisoformat(day), ())
    files = [f"{base.rstrip('/')}/{table}/{p}" for p in named]
    dataset = ds.dataset(files, format="parquet", filesystem=fs, schema=TABLES.get(table))
    if limit is not None:  # a preview: whole row groups, only as many as it takes
        tables: list[pa.Table] = []
        rows = 0
        for fragment in dataset.get_fragments():
            with fs.open_input_file(fragment.path) as f:
                parquet = pq.ParquetFile(f)
                for group in range(parquet.num_row_groups):
                    if rows >= limit:
                        break
                    tables.append(parquet.read_row_group(group, columns=columns))
                    rows += tables[-1].num_rows
            if rows >= limit:
                break
        if not tables:
            return dataset.head(0, columns=columns)
        return pa.concat_tables(tables).slice(0, limit)
    return dataset.to_table(columns=columns)


def day_checks(
    result: DayResult, root: str, object_store: ObjectStoreSettings | None = None
) -> list[CheckOutcome]:
    day = result.day.isoformat()
    inst = read_day(
        root,
        "execution_instances",
        day,
        ["execute_uuid", "batch_index", "instance_id", "status", "created_at", "finished_at"],
        object_store=object_store,
    )
    orders = read_day(root, "script_orders", day, ["execute_uuid"], object_store=object_store)
    return [
        _keys_unique(inst, day),
        _statuses_valid(inst, day),
        _finished_after_created(inst, day),
        _batch_counts(result, day),
        _ticket_count(result, orders, day),
        schema_drift_outcome(result),
    ]


def schema_drift_outcome(result: DayResult) -> CheckOutcome:
    """Passed when the day's responses were as documented; else a warning naming each drift
    (a failed check whose severity is a warning: ``warn_only``)."""
    day = result.day.isoformat()
    drift = result.drift
    lines = [f"{endpoint} {path}: {kind} ({count}x)" for endpoint, path, kind, count in drift]
    return CheckOutcome(
        check=SCHEMA_AS_DOCUMENTED,
        passed=not drift,
        warn_only=bool(drift),
        description=(
            f"{day}: every response as documented"
            if not drift
            else f"{day}: {len(drift)} schema drift finding(s): " + "; ".join(lines[:20])
        ),
        metadata={"findings": len(drift), "drift": lines[:50]},
    )


def _keys_unique(inst: pa.Table, day: str) -> CheckOutcome:
    keys = ["execute_uuid", "batch_index", "instance_id"]
    nulls = sum(inst[k].null_count for k in keys)
    distinct = inst.group_by(keys).aggregate([]).num_rows if inst.num_rows else 0
    duplicates = inst.num_rows - distinct
    return CheckOutcome(
        check=KEYS_UNIQUE,
        passed=nulls == 0 and duplicates == 0,
        description=f"{day}: {inst.num_rows} rows, {duplicates} duplicate keys, {nulls} null keys",
        metadata={"rows": inst.num_rows, "duplicate_keys": duplicates, "null_keys": nulls},
    )


def _statuses_valid(inst: pa.Table, day: str) -> CheckOutcome:
    status = inst["status"]
    allowed = pa.array(sorted(INSTANCE_STATUSES))
    unknown = pc.sum(pc.invert(pc.is_in(status, value_set=allowed)).fill_null(False)).as_py() or 0
    values = sorted(
        {v for v in pc.unique(status).to_pylist() if v not in INSTANCE_STATUSES} - {None}
    )
    return CheckOutcome(
        check=STATUSES_VALID,
        passed=unknown == 0,
        description=(
            f"{day}: every status is one of the documented {len(INSTANCE_STATUSES)}"
            if unknown == 0
            else f"{day}: {unknown} rows with undocumented statuses {values[:10]}"
        ),
        metadata={"unknown_status_rows": unknown, "null_status_rows": status.null_count},
    )


def _finished_after_created(inst: pa.Table, day: str) -> CheckOutcome:
    bad = pc.sum(pc.less(inst["finished_at"], inst["created_at"]).fill_null(False)).as_py() or 0
    return CheckOutcome(
        check=FINISHED_AFTER_CREATED,
        passed=bad == 0,
        description=f"{day}: {bad} rows finished before they were created",
        metadata={"rows_finished_before_created": bad},
    )


def _batch_counts(result: DayResult, day: str) -> CheckOutcome:
    hard: list[str] = []
    soft: list[str] = []
    for uuid, (status, batches) in result.tickets.items():
        for index, (total, ingested) in batches.items():
            if total is None or total == ingested:
                continue
            line = f"ticket={uuid} batch={index}: {ingested} of {total}"
            (soft if status == "PROCESSING" else hard).append(line)
    if hard:
        description = f"{day}: {len(hard)} batches differ from their total_instances"
    elif soft:
        description = (
            f"{day}: all finished batches complete; {len(soft)} batches of tickets still "
            "PROCESSING differ from their total (they change until the ticket ends)"
        )
    else:
        description = f"{day}: every batch has exactly its total_instances rows"
    return CheckOutcome(
        check=BATCH_COUNTS_MATCH,
        passed=not hard,
        warn_only=not hard and bool(soft),
        description=description,
        metadata={"mismatched": hard[:20], "processing_mismatched": soft[:20]},
    )


def _ticket_count(result: DayResult, orders: pa.Table, day: str) -> CheckOutcome:
    walk = result.walk
    expected = None if walk.list_total is None else walk.list_total - walk.outside_window
    landed = orders.num_rows
    passed = expected is None or landed == expected
    return CheckOutcome(
        check=TICKET_COUNT_MATCHES_LIST,
        passed=passed,
        description=(
            f"{day}: {landed} tickets landed; the list reported {walk.list_total}, "
            f"{walk.outside_window} of them outside the day"
        ),
        metadata={
            "tickets": landed,
            "list_total": walk.list_total,
            "outside_window": walk.outside_window,
        },
    )
