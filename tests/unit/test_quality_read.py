"""``read_day``: the published rows of one table's day, whole or a preview of the first rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from assets.checks import read_day
from pipelines.lake.tables import DataFile, Lake


def _publish(root: Path, files: int, rows_per_file: int, group_rows: int) -> None:
    folder = root / "t" / "dt=2026-11-19"
    folder.mkdir(parents=True)
    written = []
    for f in range(files):
        ids = range(f * rows_per_file, (f + 1) * rows_per_file)
        table = pa.table({"id": list(ids), "name": [f"n{i}" for i in ids]})
        pq.write_table(table, folder / f"part-{f}.parquet", row_group_size=group_rows)
        size = (folder / f"part-{f}.parquet").stat().st_size
        written.append(DataFile(f"dt=2026-11-19/part-{f}.parquet", size, rows_per_file, 0))
    Lake(str(root)).commit_day("t", table.schema, date(2026, 11, 19), written, run_id="r")
    # a superseded file next to them, as a republished day has until the vacuum: not read
    pq.write_table(table, folder / "part-old.parquet")


def test_a_preview_is_the_first_rows_of_the_requested_columns(tmp_path: Path) -> None:
    _publish(tmp_path, files=3, rows_per_file=7, group_rows=3)
    preview = read_day(str(tmp_path), "t", "2026-11-19", ["name"], limit=5)
    assert preview.column_names == ["name"]
    assert preview.num_rows == 5
    assert set(preview["name"].to_pylist()) <= {f"n{i}" for i in range(21)}


def test_a_preview_longer_than_the_day_is_the_whole_day(tmp_path: Path) -> None:
    _publish(tmp_path, files=2, rows_per_file=4, group_rows=3)
    preview = read_day(str(tmp_path), "t", "2026-11-19", None, limit=100)
    whole = read_day(str(tmp_path), "t", "2026-11-19", None)
    assert preview.num_rows == whole.num_rows == 8
    assert sorted(preview["id"].to_pylist()) == list(range(8))
