"""The distributed deployment of ``deploy/`` on loopback, as ``make cluster-demo`` starts it:
Redis, Postgres, moto's S3 server, the simulator, the webserver, the daemon and two Celery
workers, each a real process, with the warehouse in a bucket (``s3://``). A backfill of more
days than workers, each day's run longer than the time a run may take to start, fans out to
one run per day across the workers and lands exactly what a single process lands: the runs
wait in Dagster's queue, not in Celery's, and each worker takes a run only when it is free.
A run waiting for another run of its day says so in its event log, naming the other run. A
run whose worker process is killed is marked failed by run monitoring, leaves the day as it
was, and a new run of the day succeeds. A run rides out a Redis restart; the webserver
answers again soon after a Postgres restart."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow.fs as pafs
import pytest

from coc_simulator import SimConfig, SimulatorServer
from deploy.cluster import S3_WAREHOUSE, TERMINAL, Cluster, first_day, running_cluster
from pipelines.coc.settings import ClientSettings
from pipelines.ingest import ingest_days
from pipelines.lake import Lake, storage_options
from pipelines.objectstore import S3Location, s3_filesystem
from pipelines.settings import WarehouseSettings, warehouse_settings_from_env
from tests.support.setup_lock import ensure_cluster_services
from warehouse.build import connect

pytestmark = pytest.mark.slow

#: more days than workers (2)
DAYS = ["2026-11-23", "2026-11-24", "2026-11-25"]
#: the simulator's clock and data, fixed so that a single-process run of a simulator of its own
#: reads the same
SIM_NOW, SIM_DAYS, SIM_SEED = "2026-11-26T06:00:00Z", 4, 11
SIMULATOR = ["--now", SIM_NOW, "--days", str(SIM_DAYS), "--seed", str(SIM_SEED)]
TABLES = ("script_orders", "order_batches", "execution_instances")
#: the account's budget and the simulator's limit: a day is about 460 requests, so a day's
#: run lasts 15 s alone and 30 s beside another (the killed run is still walking when it is
#: killed) ...
RPS = 30
#: ... longer than a run may take to start (``run_monitoring.start_timeout_seconds``; a run's
#: process takes seconds to start, more on a busy machine): a run that waited for a worker
#: in Celery, rather than in Dagster's queue, would be failed
START_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    ensure_cluster_services()  # before running_cluster's own check: one apt-get at a time
    root = tmp_path_factory.mktemp("cluster")
    with running_cluster(
        root=root, max_rps=RPS, simulator_args=SIMULATOR, start_timeout_s=START_TIMEOUT_S
    ) as running:
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
    assert [r["status"] for r in runs] == ["SUCCESS"] * len(DAYS), [
        (first_day(r), r["status"], running.run_messages(r["runId"])[-3:]) for r in runs
    ]
    assert max(r["endTime"] - r["startTime"] for r in runs) > START_TIMEOUT_S
    workers = {running.worker_of(r) for r in runs}
    assert workers == {"worker-a", "worker-b"}, workers

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


def test_each_worker_takes_a_run_only_when_it_is_free(cluster: tuple[Cluster, str]) -> None:
    """What the live workers report through Celery's remote control: a task acknowledged when
    it ends, one prefetched at most, so a busy worker reserves no second run (the check that
    no worker runs two while another idles: docs/deployment.md)."""
    running, _ = cluster
    settings = running.worker_settings()
    assert set(settings) == {"worker-a", "worker-b"}
    for worker, found in settings.items():
        assert found["conf"]["task_acks_late"] is True, worker
        assert found["conf"]["worker_prefetch_multiplier"] == 1, worker
        assert found["stats"]["prefetch_count"] == 1, worker
        assert found["stats"]["pool"]["max-concurrency"] == 1, worker


def test_a_run_waiting_for_its_day_says_so_in_its_event_log(
    cluster: tuple[Cluster, str],
) -> None:
    running, backfill = cluster
    running.wait_runs(len(DAYS), backfill, timeout=240)
    day = DAYS[-1]
    first = running.launch_run(day)
    _wait_started(running, first)
    second = running.launch_run(day)
    for run_id in (first, second):
        assert running.wait_status(run_id, TERMINAL, timeout=180) == "SUCCESS"
    # whichever reached the day's lease second (the second launched, nearly always) waited
    messages = {run_id: running.run_messages(run_id) for run_id in (first, second)}
    waited = [r for r in (second, first) if any(m.startswith("took day") for m in messages[r])]
    assert len(waited) == 1, messages
    other = first if waited[0] == second else second
    waits = [m for m in messages[waited[0]] if m.startswith("waiting for run ")]
    assert waits and waits[0].startswith(f"waiting for run {other} "), waits
    assert f"to finish day {day} of " in waits[0]


def test_a_redis_restart_mid_run_is_ridden_out_and_the_day_lands_whole(
    single: Path, cluster: tuple[Cluster, str]
) -> None:
    """Redis (broker, task states, the budget and the day's lease) killed with ``kill -9``
    while a run walks its day, back 5 s later: the run goes on and succeeds, and the day
    equals one process's."""
    running, backfill = cluster
    running.wait_runs(len(DAYS), backfill, timeout=240)
    day = DAYS[1]
    run_id = running.launch_run(day)
    _wait_started(running, run_id)
    time.sleep(3.0)  # into the walk of the day
    running.restart("redis", down_s=5.0)
    assert running.wait_status(run_id, TERMINAL, timeout=240) == "SUCCESS", running.run_messages(
        run_id
    )[-3:]
    for table in TABLES:
        assert _differences(running, single, table, day) == (0, 0), table


def test_the_webserver_answers_again_within_a_few_requests_after_a_postgres_restart(
    cluster: tuple[Cluster, str],
) -> None:
    """Postgres stopped (a fast shutdown) and back after 5 s: the webserver's pooled
    connections are dead, each fails one query (docs/deployment.md), then ``logsForRun``
    answers again and keeps answering."""
    import psycopg2

    running, backfill = cluster
    run_id = running.wait_runs(len(DAYS), backfill, timeout=240)[0]["runId"]
    assert running.run_messages(run_id)
    running.restart("postgres", down_s=5.0, sig=signal.SIGINT)
    url = running.env["COC_DAGSTER_PG_URL"].replace("+psycopg2", "")
    deadline = time.monotonic() + 60
    while True:  # Postgres accepting connections again
        try:
            psycopg2.connect(url, connect_timeout=1).close()
            break
        except psycopg2.OperationalError:
            assert time.monotonic() < deadline, "postgres did not come back"
            time.sleep(0.2)
    answers = []
    for _ in range(8):
        try:
            answers.append(bool(running.run_messages(run_id)))
        except (httpx.HTTPStatusError, RuntimeError):
            answers.append(False)
        time.sleep(0.5)
    assert True in answers[:4], answers
    assert all(answers[answers.index(True) :]), answers
