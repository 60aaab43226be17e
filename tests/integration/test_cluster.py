"""The distributed deployment of ``deploy/`` on loopback, as ``make cluster-demo`` starts it:
Redis, Postgres, the simulator, the webserver, the daemon and two Celery workers, each a real
process. A backfill fans out to one run per day across the workers and lands exactly what a
single process lands; a run whose worker process is killed is marked failed by run
monitoring, leaves the day as it was, and a new run of the day succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from deploy.cluster import BIN, ROOT, Cluster, first_day, running_cluster

pytestmark = pytest.mark.slow

DAYS = ["2026-11-24", "2026-11-25"]
#: the simulator's clock and data, fixed so that a later single-process run reads the same
SIMULATOR = ["--now", "2026-11-26T06:00:00Z", "--days", "4", "--seed", "11"]
TABLES = ("script_orders", "order_batches", "execution_instances")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    root = tmp_path_factory.mktemp("cluster")
    with running_cluster(root=root, max_rps=50, simulator_args=SIMULATOR) as running:
        backfill = running.launch_backfill(DAYS)  # before the daemon: its first tick takes it
        running.start_daemon()
        yield running, backfill


def _single_process(cluster: Cluster, warehouse: Path) -> None:
    env = {k: v for k, v in cluster.env.items() if k != "COC_REDIS_URL"}
    env["COC_WAREHOUSE"] = str(warehouse)
    done = subprocess.run(
        [str(BIN / "coc-etl"), "ingest", DAYS[0], "--to", DAYS[-1]],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _differences(a: str, b: str, table: str, day: str | None = None) -> tuple[int, int]:
    """Rows of ``a`` not in ``b`` and of ``b`` not in ``a`` (as multisets), with ``dt``."""
    where = f"WHERE dt = DATE '{day}'" if day else ""

    def rel(root: str) -> str:
        return (
            f"SELECT * FROM read_parquet('{root}/{table}/dt=*/*.parquet', "
            f"hive_partitioning = true) {where}"
        )

    con = duckdb.connect()
    try:
        left = con.execute(f"SELECT count(*) FROM ({rel(a)} EXCEPT ALL {rel(b)})").fetchone()
        right = con.execute(f"SELECT count(*) FROM ({rel(b)} EXCEPT ALL {rel(a)})").fetchone()
        assert left is not None and right is not None
        return int(left[0]), int(right[0])
    finally:
        con.close()


def _day_files(warehouse: str, day: str) -> dict[str, int]:
    files = {}
    for table in TABLES:
        for path in sorted(Path(warehouse, table, f"dt={day}").glob("*.parquet")):
            files[str(path)] = path.stat().st_size
    return files


def test_a_backfill_fans_out_over_the_workers_and_equals_one_process(
    cluster: tuple[Cluster, str], tmp_path: Path
) -> None:
    running, backfill = cluster
    runs = running.wait_runs(len(DAYS), backfill, timeout=240)
    assert sorted(first_day(r) for r in runs) == DAYS  # one run per day
    assert [r["status"] for r in runs] == ["SUCCESS"] * len(DAYS)
    workers = {running.worker_of(r) for r in runs}
    assert workers <= {"worker-a", "worker-b"} and workers, workers

    single = tmp_path / "single"
    _single_process(running, single)
    for table in TABLES:
        assert _differences(running.warehouse, str(single), table) == (0, 0), table
    con = duckdb.connect(str(Path(running.warehouse) / "coc.duckdb"), read_only=True)
    try:  # the last build saw both days, whichever run built last
        days = con.execute("SELECT DISTINCT dt FROM execution_instances ORDER BY dt").fetchall()
        marts = con.execute("SELECT count(DISTINCT dt) FROM failure_rates_daily").fetchone()
    finally:
        con.close()
    assert [str(d[0]) for d in days] == DAYS
    assert marts == (len(DAYS),)


def test_a_killed_worker_fails_the_run_keeps_the_day_and_a_retry_succeeds(
    cluster: tuple[Cluster, str], tmp_path: Path
) -> None:
    running, backfill = cluster
    running.wait_runs(len(DAYS), backfill, timeout=240)
    day = DAYS[0]
    before = _day_files(running.warehouse, day)
    assert before

    run_id = running.launch_run(day)
    state = _wait_started(running, run_id)
    time.sleep(2.0)  # into the walk of the day
    os.kill(int(state["pid"]), signal.SIGKILL)  # the worker process that runs the run
    assert running.wait_status(run_id, {"FAILURE", "SUCCESS", "CANCELED"}, timeout=120) == (
        "FAILURE"
    )
    assert _day_files(running.warehouse, day) == before  # the published day, untouched

    retry = running.launch_run(day)
    assert running.wait_status(retry, {"FAILURE", "SUCCESS", "CANCELED"}, timeout=180) == (
        "SUCCESS"
    )
    single = tmp_path / "single"
    _single_process(running, single)
    for table in TABLES:
        assert _differences(running.warehouse, str(single), table, day) == (0, 0), table


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
