"""Writing a day straight into a warehouse's Delta tables, as a run's commit would.

Tests that plant data (rather than ingest it from the simulator) write a Parquet file into the
day's folder and commit it as the day's only file, the way ``pipelines/lake/publish.py`` does.
"""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lake.tables import DataFile, Lake
from pipelines.transform.schemas import TABLES


def commit_partition(
    root: Path | str, table: str, day: date, data: list[dict] | pa.Table, name: str = "part-0"
) -> Path:
    """Write ``data`` as ``<table>/dt=<day>/<name>.parquet`` and commit it as the whole day."""
    folder = Path(root) / table / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    rows = data if isinstance(data, pa.Table) else pa.Table.from_pylist(data, schema=TABLES[table])
    pq.write_table(rows, path)
    stat = os.stat(path)
    Lake(str(root)).commit_day(
        table,
        TABLES[table],
        day,
        [
            DataFile(
                path=f"dt={day.isoformat()}/{path.name}",
                size=stat.st_size,
                rows=rows.num_rows,
                modified_ms=int(time.time() * 1000),
            )
        ],
        run_id=name,
    )
    return path


def commit_file(root: Path | str, table: str, day: date, path: Path, rows: int = 0) -> None:
    """Commit a file already in the day's folder (even a broken one) as the whole day."""
    Lake(str(root)).commit_day(
        table,
        TABLES[table],
        day,
        [
            DataFile(
                path=f"dt={day.isoformat()}/{path.name}",
                size=path.stat().st_size,
                rows=rows,
                modified_ms=int(time.time() * 1000),
            )
        ],
        run_id=path.stem,
    )


def delete_partition(root: Path | str, table: str, day: date) -> None:
    """Remove a day from a table in one commit (its files stay until vacuumed)."""
    from deltalake import DeltaTable

    DeltaTable(f"{root}/{table}").delete(f"dt = '{day.isoformat()}'")


def read_logged(
    root: Path | str, table: str, day: date, schema: pa.Schema | None = None
) -> pa.Table:
    """``day`` of ``table`` as its newest Delta version names it (never a listing of the
    folder, which keeps superseded files until the vacuum); the files' own schema unless
    ``schema`` is given."""
    named = Lake(str(root)).snapshot(table).files.get(day, ())
    files = [str(Path(root) / table / p) for p in named]
    if not files:
        return (schema or pa.schema([])).empty_table()
    return pq.read_table(files, schema=schema)
