"""The distributed deployment of ``deploy/`` on loopback, as ``make cluster-demo`` starts it:
Redis, Postgres, moto's S3 server, the simulator, the webserver, the daemon and two Celery
workers, each a real process, with the warehouse in a bucket (``s3://``). A backfill fans out
to one run per day across the workers and lands exactly what a single process lands; a run
whose worker process is killed is marked failed by run monitoring, leaves the day as it was,
and a new run of the day succeeds."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest

from coc_simulator import SimConfig, SimulatorServer
from deploy.cluster import S3_WAREHOUSE, Cluster, first_day, running_cluster
from pipelines.coc.settings import ClientSettings
from pipelines.ingest import ingest_days
from pipelines.lake import Lake, storage_options
from pipelines.objectstore import S3Location, s3_filesystem
from pipelines.settings import WarehouseSettings, warehouse_settings_from_env
from tests.setup_lock import ensure_cluster_services
from warehouse.build import connect

pytestmark = pytest.mark.slow

DAYS = ["2026-11-24", "2026-11-25"]
#: the simulator's clock and data, fixed so that a single-process run of a simulator of its own
#: reads the same
SIM_NOW, SIM_DAYS, SIM_SEED = "2026-11-26T06:00:00Z", 4, 11
SIMULATOR = ["--now", SIM_NOW, "--days", str(SIM_DAYS), "--seed", str(SIM_SEED)]
TABLES = ("script_orders", "order_batches", "execution_instances")
#: the account's budget and the simulator's limit: a day is about 460 requests, so a walk
#: lasts seconds (the killed run is still walking when it is killed)
RPS = 100


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    ensure_cluster_services()  # before running_cluster's own check: one apt-get at a time
    root = tmp_path_factory.mktemp("cluster")
    with running_cluster(root=root, max_rps=RPS, simulator_args=SIMULATOR) as running:
        backfill = running.launch_backfill(DAYS)  # before the daemon: its first tick takes it
        running.start_daemon()
        yield running, backfill


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same days ingested by one process into a local folder, from a simulator of its
    own serving the same data (``SIMULATOR``'s clock, days and seed) without a rate limit:
    done before the cluster starts, rather than after its backfill, at the gateway's rate."""
    warehouse = tmp_path_factory.mktemp("single")
    config = SimConfig(now=datetime.fromisoformat(SIM_NOW), days=SIM_DAYS, seed=SIM_SEED)
    with SimulatorServer(config) as sim:
        client = ClientSettings(endpoint=sim.url, max_rps=None)
        wh = WarehouseSettings(warehouse=str(warehouse), duckdb_path=str(warehouse / "coc.duckdb"))
        ingest_days(client, wh, [date.fromisoformat(d) for d in DAYS])
    return warehouse


def _warehouse(running: Cluster) -> WarehouseSettings:
    return warehouse_settings_from_env(running.env)


def _differences(
    running: Cluster, single: Path, table: str, day: str | None = None
) -> tuple[int, int]:
    """Rows of the cluster's view ``table`` (in ``coc.duckdb``, over the bucket) not in the
    single run's Parquet, and the other way round (as multisets), with ``dt``."""
    where = f"WHERE dt = DATE '{day}'" if day else ""
    mine = f"SELECT * FROM {table} {where}"
    theirs = (
        f"SELECT * FROM read_parquet('{single}/{table}/dt=*/*.parquet', "
        f"hive_partitioning = true) {where}"
    )
    wh = _warehouse(running)
    con = connect(wh.duckdb_path, object_store=wh.object_store)
    try:
        left = con.execute(f"SELECT count(*) FROM ({mine} EXCEPT ALL {theirs})").fetchone()
        right = con.execute(f"SELECT count(*) FROM ({theirs} EXCEPT ALL {mine})").fetchone()
        assert left is not None and right is not None
        return int(left[0]), int(right[0])
    finally:
        con.close()


def _published(running: Cluster, day: str) -> dict[str, Any]:
    """The day as published in the bucket: each table's Delta version ("manifest"), and every
    object under its partitions with its size."""
    wh = _warehouse(running)
    assert wh.object_store is not None
    fs = s3_filesystem(wh.object_store)
    root = S3Location.parse(wh.warehouse).path
    found: dict[str, Any] = {}
    for table in TABLES:
        selector = pafs.FileSelector(f"{root}/{table}/dt={day}", allow_not_found=True)
        for info in fs.get_file_info(selector):
            found[info.path] = info.size
    lake = Lake(S3Location.parse(wh.warehouse).uri, options=storage_options(wh.object_store))
    found["manifest"] = tuple(lake.snapshot(t).version for t in TABLES)
    return found


def test_a_backfill_fans_out_over_the_workers_and_equals_one_process(
    single: Path, cluster: tuple[Cluster, str]
) -> None:
    running, backfill = cluster
    assert running.warehouse == S3_WAREHOUSE and running.s3_endpoint  # the default: a bucket
    runs = running.wait_runs(len(DAYS), backfill, timeout=240)
    assert sorted(first_day(r) for r in runs) == DAYS  # one run per day
    assert [r["status"] for r in runs] == ["SUCCESS"] * len(DAYS)
    workers = {running.worker_of(r) for r in runs}
    assert workers <= {"worker-a", "worker-b"} and workers, workers

    for table in TABLES:
        assert _differences(running, single, table) == (0, 0), table
    wh = _warehouse(running)
    con = connect(wh.duckdb_path, object_store=wh.object_store)
    try:  # the last build saw both days, whichever run built last
        days = con.execute("SELECT DISTINCT dt FROM execution_instances ORDER BY dt").fetchall()
        marts = con.execute("SELECT count(DISTINCT dt) FROM failure_rates_daily").fetchone()
    finally:
        con.close()
    assert [str(d[0]) for d in days] == DAYS
    assert marts == (len(DAYS),)
    secret = running.env["AWS_SECRET_ACCESS_KEY"]
    for log in running.root.glob("*.log"):  # every process's output
        assert secret not in log.read_text(errors="replace"), log.name


def test_a_killed_worker_fails_the_run_keeps_the_day_and_a_retry_succeeds(
    single: Path, cluster: tuple[Cluster, str]
) -> None:
    running, backfill = cluster
    running.wait_runs(len(DAYS), backfill, timeout=240)
    day = DAYS[0]
    before = _published(running, day)
    assert len(before) == 1 + len(TABLES)

    run_id = running.launch_run(day)
    state = _wait_started(running, run_id)
    time.sleep(2.0)  # into the walk of the day
    os.kill(int(state["pid"]), signal.SIGKILL)  # the worker process that runs the run
    assert running.wait_status(run_id, {"FAILURE", "SUCCESS", "CANCELED"}, timeout=120) == (
        "FAILURE"
    )
    assert _published(running, day) == before  # the published day, untouched

    retry = running.launch_run(day)
    assert running.wait_status(retry, {"FAILURE", "SUCCESS", "CANCELED"}, timeout=180) == (
        "SUCCESS"
    )
    assert _published(running, day)["manifest"] != before["manifest"]  # republished
    for table in TABLES:
        assert _differences(running, single, table, day) == (0, 0), table


def _wait_started(running: Cluster, run_id: str, timeout: float = 120) -> dict[str, Any]:
    """The Celery task of ``run_id`` once a worker process has started it (its pid)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = next((r for r in running.runs() if r["runId"] == run_id), None)
        if run is not None and run["status"] == "STARTED":
            state = running.task_state(run)
            if state.get("status") == "STARTED" and state.get("pid"):
                return state
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} never started on a worker")
