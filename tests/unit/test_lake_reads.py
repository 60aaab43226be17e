"""How often the Delta logs are read, and that reading them less keeps every guarantee.

A run opens the instances' table once for the shrink guard and its commit; the build's vacuum
reuses the tables its pinning opened, brought up to date first (a commit between the pinning
and the vacuum is never vacuumed away); the product's tables checkpoint every 10 commits.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from pipelines.lake.day_writer import DayWriter
from pipelines.lake.tables import Lake
from pipelines.transform.schemas import TABLES
from tests.support.lake import commit_partition
from warehouse.pinning import pin_tables
from warehouse.vacuum import vacuum_tables

DAY = dt.date(2026, 11, 25)


def _write_day(root: Path, day: dt.date, instances: int) -> None:
    with DayWriter(root=str(root), day=day) as writer:
        for table, schema in TABLES.items():
            rows = instances if table == "execution_instances" else 1
            columns = {
                f.name: pa.nulls(rows, f.type)
                if f.nullable
                else pa.array([str(n) for n in range(rows)]).cast(f.type)
                for f in schema
            }
            writer.write(table, pa.table(columns, schema=schema))
        writer.commit()


def test_a_run_opens_each_table_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_day(tmp_path, DAY, 5)  # the tables exist; the next run replaces the day
    opened: list[str] = []
    real_open = Lake.open

    def counting_open(self: Lake, table: str, **kwargs: Any) -> DeltaTable | None:
        opened.append(table)
        return real_open(self, table, **kwargs)

    monkeypatch.setattr(Lake, "open", counting_open)
    _write_day(tmp_path, DAY, 4)
    assert sorted(opened) == sorted(TABLES)  # the shrink guard's read is the commit's
    assert Lake(str(tmp_path)).day_rows("execution_instances", DAY) == 4


def test_the_vacuum_sees_commits_made_after_the_pinning(tmp_path: Path) -> None:
    first = commit_partition(tmp_path, "script_orders", DAY, [], name="part-a")
    lake = Lake(str(tmp_path))
    pinned = pin_tables(lake, ["script_orders"])
    # a run replaces the day after the build pinned the table, before its vacuum
    second = commit_partition(tmp_path, "script_orders", DAY, [], name="part-b")
    removed = vacuum_tables(lake, {"script_orders": set()}, retention_h=0, opened=pinned.opened)
    assert [Path(p).name for p in removed["script_orders"]] == [first.name]
    assert second.exists() and not first.exists()
    assert lake.snapshot("script_orders").files[DAY] == (f"dt={DAY}/{second.name}",)


def test_the_tables_checkpoint_every_ten_commits(tmp_path: Path) -> None:
    for n in range(10):  # versions 0 to 9: the tenth commit is checkpointed
        commit_partition(tmp_path, "order_batches", DAY, [], name=f"part-{n}")
    log = tmp_path / "order_batches" / "_delta_log"
    assert sorted(p.name for p in log.glob("*.checkpoint.parquet")) == [
        "00000000000000000009.checkpoint.parquet"
    ]
    found = DeltaTable(str(tmp_path / "order_batches"))
    assert found.metadata().configuration["delta.checkpointInterval"] == "10"
