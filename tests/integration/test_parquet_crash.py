"""``kill -9`` a process rewriting a published day, at each step of its commit: every reader
sees each table's day whole, and ``coc.duckdb`` shows the day of one run.

The writer runs in a real subprocess (``parquet_crash_writer.py``) that publishes version 1,
then starts version 2 and is killed with SIGKILL at a chosen moment: while streaming row
groups, and with 0, 1 or 2 of its three tables committed. The readers are those of other
engines (deltalake's own reader, Polars) and ``coc.duckdb`` built over the tables. The killed
run's lock goes with it: the next writer takes the day at once and publishes over it.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable

from pipelines.parquet import DayWriter, publisher_for
from pipelines.publish import ShrinkGuard
from pipelines.schemas import TABLES
from warehouse.build import build_warehouse

HELPER = Path(__file__).with_name("parquet_crash_writer.py")
REPO = HELPER.parents[2]
DAY = dt.date(2026, 11, 25)


def published(root: Path) -> dict[str, bytes]:
    """Every file readers see through the tables' Delta logs, by path relative to the root."""
    seen: dict[str, bytes] = {}
    for table in TABLES:
        for uri in DeltaTable(str(root / table)).file_uris():
            path = Path(uri.removeprefix("file://"))
            seen[str(path.relative_to(root))] = path.read_bytes()
    return seen


def tickets_via_deltalake(root: Path, table: str) -> list[str]:
    data = DeltaTable(str(root / table)).to_pyarrow_table(columns=["execute_uuid", "dt"])
    assert set(data.column("dt").to_pylist()) <= {DAY}
    return sorted(data.column("execute_uuid").to_pylist())


def tickets_via_polars(root: Path, table: str) -> list[str]:
    import polars as pl

    return sorted(pl.read_delta(str(root / table)).get_column("execute_uuid").to_list())


def tickets_via_coc_duckdb(root: Path, table: str) -> list[str]:
    path = build_warehouse(warehouse=str(root), duckdb_path=str(root / "coc.duckdb")).duckdb_path
    with duckdb.connect(path, read_only=True) as con:
        return sorted(u for (u,) in con.execute(f"SELECT execute_uuid FROM {table}").fetchall())


def wait_for(marker: Path, proc: subprocess.Popen, deadline: float) -> None:
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"writer exited {proc.returncode}: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"writer never reached {marker.name}")
        time.sleep(0.005)


def killed_writer(tmp_path: Path, mode: str) -> tuple[Path, dict[str, bytes]]:
    """Run the helper until its ``stop`` marker, SIGKILL it; returns the root and version 1."""
    root, markers = tmp_path / "wh", tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), str(root), DAY.isoformat(), str(markers), mode],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        wait_for(markers / "v1", proc, deadline)
        version1 = published(root)
        (markers / "go").touch()
        wait_for(markers / "stop", proc, deadline)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    return root, version1


V1 = {"execution_instances": ["v1-0"] * 100 + ["v1-1"] * 100 + ["v1-2"] * 100}
V1 |= {t: ["v1-0", "v1-1", "v1-2"] for t in ("script_orders", "order_batches")}
V2 = {"execution_instances": ["v2-0"] * 100 + ["v2-1"] * 80}
V2 |= {t: ["v2-0", "v2-1"] for t in ("script_orders", "order_batches")}


def assert_readers(root: Path, other_engines: dict[str, list[str]], coc: dict[str, list[str]]):
    for table in TABLES:
        assert tickets_via_deltalake(root, table) == other_engines[table], table
        assert tickets_via_polars(root, table) == other_engines[table], table
    for table in TABLES:  # coc.duckdb: the three tables of one run
        assert tickets_via_coc_duckdb(root, table) == coc[table], table


def assert_next_writer_publishes(root: Path) -> None:
    allowing = publisher_for(str(root), shrink=ShrinkGuard(allow=True))  # v3 has no instances
    with DayWriter(
        publisher=allowing, day=DAY, lock_timeout_s=0
    ) as w:  # the dead run's lock is free
        w.write("script_orders", orders("v3"))
        w.commit()
    assert tickets_via_deltalake(root, "script_orders") == ["v3-0"]
    assert tickets_via_coc_duckdb(root, "script_orders") == ["v3-0"]


def orders(tag: str):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    from pipelines.schemas import SCRIPT_ORDERS

    return pa.RecordBatch.from_pylist([{"execute_uuid": f"{tag}-0"}], schema=SCRIPT_ORDERS)


def test_killed_while_writing_row_groups(tmp_path: Path) -> None:
    root, version1 = killed_writer(tmp_path, "mid-write")
    assert published(root) == version1
    assert_readers(root, V1, V1)
    assert_next_writer_publishes(root)


@pytest.mark.parametrize("commits", [0, 1, 2])
def test_killed_at_each_step_of_the_commit(tmp_path: Path, commits: int) -> None:
    root, _ = killed_writer(tmp_path, f"after-{commits}-commits")
    # engines reading one table see each table's day whole: the committed ones at version 2
    tables = list(TABLES)
    now = {t: (V2 if i < commits else V1)[t] for i, t in enumerate(tables)}
    assert_readers(root, now, V1)  # coc.duckdb keeps the day of the run that committed last
    assert_next_writer_publishes(root)
