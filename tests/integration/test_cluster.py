"""The distributed deployment of ``deploy/`` on loopback, as ``make cluster-demo`` starts it:
Redis, Postgres, moto's S3 server, the simulator, and the webserver, the daemon and two Celery
workers each started with the command of its systemd unit (``deploy/systemd/``), each a real
process, with the warehouse in a bucket (``s3://``). One cluster for the module.

- A backfill of more days than workers fans out to one run per day across the workers and
  lands exactly what a single process lands: the runs wait in Dagster's queue, not in
  Celery's (a run is handed to Celery only once a worker is free). The two runs that ran at
  once, on two workers, committing to the same Delta tables, lost no commit.
- Celery handed more runs than workers: a busy worker reserves none; the waiting run goes to
  the first worker that is free. A run waiting for another run of its day says so in its
  event log, naming the other run.
- A run whose worker process is killed is marked failed by run monitoring and leaves the day
  as it was; a new run of the day rides out a Redis restart and succeeds.
- The webserver answers again soon after a Postgres restart."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow.fs as pafs
import pytest

from coc_etl.cluster import BIN, ROOT, S3_WAREHOUSE, TERMINAL, Cluster, first_day, running_cluster
from coc_etl.systemd_units import ENV_EXAMPLE, read_environment_file, service_command
from coc_simulator import SimConfig, SimulatorServer
from pipelines.coc.settings import ClientSettings
from pipelines.ingest import ingest_days
from pipelines.lake.objectstore import S3Location, s3_filesystem
from pipelines.lake.tables import Lake, storage_options
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
#: killed)
RPS = 30


@pytest.fixture(scope="module")
def started(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Cluster, str, Future[Path]]]:
    """The cluster with its backfill under way, and the same days ingested by one process
    into a local folder, from a simulator of its own serving the same data (``SIMULATOR``'s
    clock, days and seed) without a rate limit: done while the cluster starts, in a thread."""
    ensure_cluster_services()  # before running_cluster's own check: one apt-get at a time
    root = tmp_path_factory.mktemp("cluster")
    warehouse = tmp_path_factory.mktemp("single")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="single") as pool:
        single = pool.submit(_ingest_single, warehouse)
        with running_cluster(root=root, max_rps=RPS, simulator_args=SIMULATOR) as running:
            backfill = running.launch_backfill(DAYS)  # before the daemon: its first tick
            running.start_daemon()
            yield running, backfill, single


def _ingest_single(warehouse: Path) -> Path:
    config = SimConfig(now=datetime.fromisoformat(SIM_NOW), days=SIM_DAYS, seed=SIM_SEED)
    with SimulatorServer(config) as sim:
        client = ClientSettings(endpoint=sim.url, max_rps=None)
        wh = WarehouseSettings(warehouse=str(warehouse), duckdb_path=str(warehouse / "coc.duckdb"))
        ingest_days(client, wh, [date.fromisoformat(d) for d in DAYS])
    return warehouse


@pytest.fixture(scope="module")
def cluster(started: tuple[Cluster, str, Future[Path]]) -> tuple[Cluster, str]:
    return started[0], started[1]


@pytest.fixture(scope="module")
def single(started: tuple[Cluster, str, Future[Path]]) -> Path:
    """The days as one process lands them (a local folder)."""
    return started[2].result(timeout=300)


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


def _commits(running: Cluster) -> dict[str, dict[str, int]]:
    """Each table's commits of days, by day, from its Delta log; checks on the way that its
    versions are one per commit (0, 1, 2, ...), that no run committed twice to it, and that
    the table was created once."""
    wh = _warehouse(running)
    lake = Lake(S3Location.parse(wh.warehouse).uri, options=storage_options(wh.object_store))
    found: dict[str, dict[str, int]] = {}
    for table in TABLES:
        log = lake.open(table)
        assert log is not None, table
        history = log.history()
        assert sorted(int(c["version"]) for c in history) == list(range(len(history))), table
        runs = Counter(str(c.get("coc_run")) for c in history)
        assert max(runs.values()) == 1, (table, runs)  # a run's commit retried twice: no
        days = Counter(str(c["coc_day"]) for c in history if c.get("coc_day"))
        assert sum(days.values()) + 1 == len(history), (table, history)  # + its creation
        found[table] = dict(days)
    return found


@pytest.mark.timeout(600)  # the cluster's start-up (its fixture) counts in, on a busy machine
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
    # the runs waited in Dagster's queue, not in Celery's: the daemon handed the third run to
    # Celery (launchTime) only once one of the first two had ended and freed a worker (with
    # more slots than workers it would wait in Celery as STARTING, where run monitoring's
    # start_timeout_seconds fails a run that waits longer than a day's run)
    by_launch = sorted(runs, key=lambda r: r["launchTime"])
    assert by_launch[2]["launchTime"] >= min(r["endTime"] for r in by_launch[:2]) - 0.5, [
        (first_day(r), r["launchTime"], r["startTime"], r["endTime"]) for r in by_launch
    ]
    workers = {running.worker_of(r) for r in runs}
    assert workers == {"worker-a", "worker-b"}, workers
    # two runs on two workers at once, committing their days to the same tables: every
    # run's commit is in each table's log, once, each a version of its own, nothing lost
    first, second = sorted(runs, key=lambda r: r["startTime"])[:2]
    assert second["startTime"] < first["endTime"], "no two runs ran at once"
    assert running.worker_of(first) != running.worker_of(second)
    assert _commits(running) == {t: {d: 1 for d in DAYS} for t in TABLES}

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


def test_the_services_run_the_commands_of_their_systemd_units(
    cluster: tuple[Cluster, str],
) -> None:
    """The webserver, the daemon and each worker were started with their unit's
    ``ExecStart`` (``deploy/systemd/``), and every variable the cluster gives the services
    is one that ``coc.env.example`` documents."""
    running, _ = cluster
    units = {"webserver": "coc-webserver.service", "daemon": "coc-daemon.service"}
    units |= {w: "coc-worker@.service" for w in ("worker-a", "worker-b")}
    for name, unit in units.items():
        argv, kwargs = running.commands[name]
        port = running.graphql_url.rsplit(":", 1)[1].split("/")[0]
        expected = service_command(
            unit,
            {**running.env, "COC_WEBSERVER_HOST": "127.0.0.1", "COC_WEBSERVER_PORT": port},
            root=ROOT,
            bin_dir=BIN,
            instance=name,
        )
        assert argv == expected.argv, name
        assert kwargs["cwd"] == ROOT
        assert kwargs["env"]["PATH"] == expected.environment["PATH"]
    assert running.processes["webserver"].poll() is None
    example = read_environment_file(ENV_EXAMPLE)
    given = {k for k in running.env if k.startswith(("COC_", "AWS_", "DAGSTER_"))}
    assert given - set(example) == set()


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


def test_a_busy_worker_reserves_no_run_and_a_run_waiting_for_its_day_says_so(
    cluster: tuple[Cluster, str],
) -> None:
    """Celery handed more runs than workers (the daemon given 3 slots for 2 workers): two
    runs of one day, launched at once, keep both workers busy (the second to reach the day's
    lease waits for the first), and a run of another day stays in the broker, reserved by
    neither busy worker, until the worker of the run that holds the day is free and takes it.
    (With early acknowledgement, a busy worker would take it and hold it for after its run.)
    The waiting run's event log names the run it waited for."""
    running, backfill = cluster
    running.wait_runs(len(DAYS), backfill, timeout=240)
    # the third run waits in Celery as long as the first runs (within run monitoring's start
    # timeout, 180 s as deployed)
    running.restart_daemon(worker_slots=3, start_timeout_s=None)
    day, other_day = DAYS[-1], DAYS[1]
    pair = [running.launch_run(day), running.launch_run(day)]
    started = [_wait_started(running, run_id) for run_id in pair]
    # both at once, one per worker (early acknowledgement: one worker took both, in turn)
    assert started[0]["worker"] != started[1]["worker"], started
    third = running.launch_run(other_day)
    samples = []
    deadline = time.monotonic() + 120
    while True:  # while both run, the third handed to Celery and taken by no worker
        status = {r["runId"]: r["status"] for r in running.runs()}
        if any(status[r] != "STARTED" for r in pair):
            break
        if status[third] == "STARTING":
            tasks = running.worker_tasks()
            if all(s["status"] == "STARTED" for s in running.runs() if s["runId"] in pair):
                samples.append(tasks)
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert samples, "the third run was never in Celery while both workers were busy"
    for tasks in samples:
        assert set(tasks) == {"worker-a", "worker-b"}, tasks
        assert all(len(t["active"]) == 1 and t["reserved"] == [] for t in tasks.values()), tasks
    for run_id in (*pair, third):
        assert running.wait_status(run_id, TERMINAL, timeout=240) == "SUCCESS", run_id

    # the second to reach the day's lease waited, naming the other run
    messages = {run_id: running.run_messages(run_id) for run_id in pair}
    waited = [r for r in pair if any(m.startswith("took day") for m in messages[r])]
    assert len(waited) == 1, messages
    holder = pair[0] if waited[0] == pair[1] else pair[1]
    waits = [m for m in messages[waited[0]] if m.startswith("waiting for run ")]
    assert waits and waits[0].startswith(f"waiting for run {holder} "), waits
    assert f"to finish day {day} of " in waits[0]

    # the third run went to the worker free first (the holder's), once the holder had ended,
    # while the waiting run still ran on the other
    runs = {r["runId"]: r for r in running.runs()}
    assert running.worker_of(runs[third]) == running.worker_of(runs[holder])
    assert running.worker_of(runs[waited[0]]) != running.worker_of(runs[holder])
    assert runs[third]["startTime"] >= runs[holder]["endTime"] - 1
    assert runs[third]["startTime"] < runs[waited[0]]["endTime"]


def test_a_killed_worker_fails_the_run_keeps_the_day_and_a_retry_rides_out_redis(
    single: Path, cluster: tuple[Cluster, str]
) -> None:
    """The worker process of a run killed mid-walk: run monitoring fails the run, the
    published day is untouched. Then a new run of the day, with Redis (broker, task states,
    the budget and the day's lease) killed with ``kill -9`` while it walks the day and back
    5 s later: it goes on and succeeds, and the day equals one process's."""
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
    _wait_walking(running, retry)
    running.restart("redis", down_s=5.0)
    assert running.wait_status(retry, TERMINAL, timeout=240) == "SUCCESS", running.run_messages(
        retry
    )[-3:]
    assert _published(running, day)["manifest"] != before["manifest"]  # republished
    for table in TABLES:
        assert _differences(running, single, table, day) == (0, 0), table


def _wait_walking(running: Cluster, run_id: str) -> None:
    """Until ``run_id`` has been walking its day for 3 s: started on a worker, and past the
    wait for the day's lease if it waited (the killed holder's lease lapses after 10 s)."""
    _wait_started(running, run_id)
    time.sleep(3.0)
    deadline = time.monotonic() + 60
    while True:
        messages = running.run_messages(run_id)
        waiting = any(m.startswith("waiting for run ") for m in messages)
        if not waiting or any(m.startswith("took day") for m in messages):
            break
        assert time.monotonic() < deadline, messages[-3:]
        time.sleep(0.5)
    if waiting:
        time.sleep(3.0)


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
