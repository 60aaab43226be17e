"""Helper process for ``test_parquet_crash.py``: publish a day, then be killed rewriting it.

    python parquet_crash_writer.py ROOT DAY MARKERS MODE

Publishes version 1 of DAY under ROOT, touches ``MARKERS/v1`` and waits for ``MARKERS/go``;
then writes version 2 and touches ``MARKERS/stop`` at the moment the test must kill it:

- ``mid-write``: after 20 row groups of version 2 are in its file, still writing;
- ``after-N-commits`` (N = 0, 1, 2): its files written and closed, N of the three tables
  committed (0: none yet; 1: ``execution_instances``; 2: ``script_orders`` too).

It then stalls until killed. Never run by pytest itself (the name does not start with test_).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipelines.lake import day_writer as parquet
from pipelines.lake.publish import DeltaPublish
from pipelines.lake.tables import Lake
from pipelines.settings import warehouse_settings_from_env
from pipelines.transform.schemas import EXECUTION_INSTANCES, ORDER_BATCHES, SCRIPT_ORDERS

V1_INSTANCES = 300


def instances(n: int, *, start: int, tag: str) -> pa.RecordBatch:
    ids = range(start, start + n)
    columns: dict[str, list] = {f.name: [None] * n for f in EXECUTION_INSTANCES}
    columns |= {
        "execute_uuid": [f"{tag}-{i // 100}" for i in ids],
        "batch_index": [(i // 10) % 10 for i in ids],
        "instance_id": list(ids),
        "status": ["ABNORMAL" if i % 7 == 0 else "FINISHED" for i in ids],
        "host_name": [f"host-{i % 9}" for i in ids],
        "created_at": [1_764_028_800_000 + i for i in ids],
    }
    return pa.RecordBatch.from_pydict(columns, schema=EXECUTION_INSTANCES)


def write_day(w: parquet.DayWriter, tag: str, rows: int) -> None:
    for start in range(0, rows, 50):
        w.write("execution_instances", instances(min(50, rows - start), start=start, tag=tag))
    tickets = [f"{tag}-{i}" for i in range((rows + 99) // 100)]
    orders = [{"execute_uuid": t, "order_name": tag} for t in tickets]
    batches = [{"execute_uuid": t, "batch_index": 0, "rotation_strategy": tag} for t in tickets]
    w.write("script_orders", pa.RecordBatch.from_pylist(orders, schema=SCRIPT_ORDERS))
    w.write("order_batches", pa.RecordBatch.from_pylist(batches, schema=ORDER_BATCHES))


def stall(markers: Path) -> None:
    (markers / "stop").touch()
    time.sleep(60)
    sys.exit("was not killed")


class StallingLake:
    """A lake that commits ``commits`` tables' days, then stalls before the next commit."""

    def __init__(self, inner: Lake, markers: Path, commits: int) -> None:
        self.inner, self.markers, self.left = inner, markers, commits

    def commit_day(self, *args: Any, **kwargs: Any) -> None:
        if self.left == 0:
            stall(self.markers)
        self.left -= 1
        self.inner.commit_day(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def publisher(root: str) -> DeltaPublish:
    """The publisher of ``root``: a local folder, or ``s3://`` with the ``AWS_*`` settings."""
    if not root.startswith("s3://"):
        return parquet.publisher_for(root)
    return parquet.warehouse_publisher(
        warehouse_settings_from_env({**os.environ, "COC_WAREHOUSE": root, "COC_DUCKDB": "/x"})
    )


def main(root: str, day: dt.date, markers: Path, mode: str) -> None:
    with parquet.DayWriter(publisher=publisher(root), day=day, row_group_rows=100) as w:
        write_day(w, "v1", V1_INSTANCES)
        w.commit()
    (markers / "v1").touch()
    while not (markers / "go").exists():
        time.sleep(0.005)

    if mode == "mid-write":
        with parquet.DayWriter(publisher=publisher(root), day=day, row_group_rows=10) as w:
            for i in range(100_000):
                w.write("execution_instances", instances(10, start=i * 10, tag="v2"))
                if i == 20:
                    (markers / "stop").touch()
                time.sleep(0.001)
        sys.exit("was not killed")

    commits = int(mode.removeprefix("after-").removesuffix("-commits"))
    stalling = publisher(root)
    stalling.lake = StallingLake(stalling.lake, markers, commits)  # type: ignore[assignment]
    with parquet.DayWriter(day=day, publisher=stalling) as w:
        write_day(w, "v2", 180)
        w.commit()
    sys.exit("was not killed")


if __name__ == "__main__":
    main(sys.argv[1], dt.date.fromisoformat(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
