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
from dataclasses import dataclass
from pathlib import Path

import pytest
from deltalake import DeltaTable

from pipelines.lake.day_writer import DayWriter, warehouse_publisher
from pipelines.lake.tables import storage_options
from pipelines.settings import ObjectStoreSettings, WarehouseSettings
from pipelines.transform.schemas import TABLES
from warehouse.build import build_warehouse, connect

HELPER = Path(__file__).with_name("parquet_crash_writer.py")
REPO = HELPER.parents[2]
DAY = dt.date(2026, 11, 25)


@dataclass
class Where:
    """A warehouse root (a local folder or an ``s3://`` URI) and how to reach it."""

    root: str
    env: dict[str, str]
    object_store: ObjectStoreSettings | None = None

    def uri(self, table: str) -> str:
        return f"{self.root}/{table}"

    @property
    def options(self) -> dict[str, str] | None:
        return storage_options(self.object_store)


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COC_"))}
    env["PYTHONPATH"] = str(REPO)
    if request.param == "local":
        return Where(str(tmp_path / "wh"), env)
    s3 = request.getfixturevalue("s3_server")
    root = f"s3://{s3.bucket()}/coc"
    return Where(root, env | s3.env(root), s3.settings())


def published(where: Where) -> set[str]:
    """Every file readers see through the tables' Delta logs."""
    return {
        uri
        for table in TABLES
        for uri in DeltaTable(where.uri(table), storage_options=where.options).file_uris()
    }


def tickets_via_deltalake(where: Where, table: str) -> list[str]:
    found = DeltaTable(where.uri(table), storage_options=where.options)
    data = found.to_pyarrow_table(columns=["execute_uuid", "dt"])
    assert set(data.column("dt").to_pylist()) <= {DAY}
    return sorted(data.column("execute_uuid").to_pylist())


def tickets_via_polars(where: Where, table: str) -> list[str]:
    import polars as pl

    aws = {k: v for k, v in (where.options or {}).items() if k.startswith("AWS_")}
    data = pl.read_delta(where.uri(table), storage_options=aws or None)
    return sorted(data.get_column("execute_uuid").to_list())


def tickets_via_coc_duckdb(where: Where, table: str, tmp: Path) -> list[str]:
    path = build_warehouse(
        warehouse=where.root, duckdb_path=str(tmp / "coc.duckdb"), object_store=where.object_store
    ).duckdb_path
    con = connect(path, object_store=where.object_store)
    try:
        return sorted(u for (u,) in con.execute(f"SELECT execute_uuid FROM {table}").fetchall())
    finally:
        con.close()


def wait_for(marker: Path, proc: subprocess.Popen, deadline: float) -> None:
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"writer exited {proc.returncode}: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"writer never reached {marker.name}")
        time.sleep(0.005)


def killed_writer(where: Where, tmp_path: Path, mode: str) -> set[str]:
    """Run the helper until its ``stop`` marker, SIGKILL it; returns version 1's files."""
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), where.root, DAY.isoformat(), str(markers), mode],
        env=where.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        wait_for(markers / "v1", proc, deadline)
        version1 = published(where)
        (markers / "go").touch()
        wait_for(markers / "stop", proc, deadline)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    return version1


V1 = {"execution_instances": ["v1-0"] * 100 + ["v1-1"] * 100 + ["v1-2"] * 100}
V1 |= {t: ["v1-0", "v1-1", "v1-2"] for t in ("script_orders", "order_batches")}
V2 = {"execution_instances": ["v2-0"] * 100 + ["v2-1"] * 80}
V2 |= {t: ["v2-0", "v2-1"] for t in ("script_orders", "order_batches")}


def assert_readers(
    where: Where, tmp: Path, other_engines: dict[str, list[str]], coc: dict[str, list[str]]
) -> None:
    for table in TABLES:
        assert tickets_via_deltalake(where, table) == other_engines[table], table
        assert tickets_via_polars(where, table) == other_engines[table], table
    for table in TABLES:  # coc.duckdb: the three tables of one run
        assert tickets_via_coc_duckdb(where, table, tmp) == coc[table], table


def assert_next_writer_publishes(where: Where, tmp: Path) -> None:
    wh = WarehouseSettings(
        warehouse=where.root,
        duckdb_path=str(tmp / "coc.duckdb"),
        object_store=where.object_store,
        allow_shrink=True,  # v3 has no instances
    )
    with DayWriter(publisher=warehouse_publisher(wh), day=DAY, lock_timeout_s=0) as w:
        w.write("script_orders", orders("v3"))  # the dead run's lock is free at once
        w.commit()
    assert tickets_via_deltalake(where, "script_orders") == ["v3-0"]
    assert tickets_via_coc_duckdb(where, "script_orders", tmp) == ["v3-0"]


def orders(tag: str):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    from pipelines.transform.schemas import SCRIPT_ORDERS

    return pa.RecordBatch.from_pylist([{"execute_uuid": f"{tag}-0"}], schema=SCRIPT_ORDERS)


def test_killed_while_writing_row_groups(where: Where, tmp_path: Path) -> None:
    version1 = killed_writer(where, tmp_path, "mid-write")
    assert published(where) == version1
    assert_readers(where, tmp_path, V1, V1)
    assert_next_writer_publishes(where, tmp_path)


@pytest.mark.parametrize("commits", [0, 1, 2])
def test_killed_at_each_step_of_the_commit(where: Where, tmp_path: Path, commits: int) -> None:
    killed_writer(where, tmp_path, f"after-{commits}-commits")
    # engines reading one table see each table's day whole: the committed ones at version 2
    tables = list(TABLES)
    now = {t: (V2 if i < commits else V1)[t] for i, t in enumerate(tables)}
    assert_readers(where, tmp_path, now, V1)  # coc.duckdb keeps the run that committed last
    assert_next_writer_publishes(where, tmp_path)
