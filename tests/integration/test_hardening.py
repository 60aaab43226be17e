"""Issue 13, findings 2-10: what a careful, hostile new user tried, as real processes.

Each test runs ``coc-etl`` (or ``dagster``) as a subprocess against the simulator on
loopback and looks at the exit code, stderr, the files left behind and the requests the
simulator answered.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from pipelines.demo import materialize_command
from pipelines.lake import Lake
from pipelines.schemas import DAY_TABLES
from pipelines.walk import WalkStats, _listed
from tests.support.cli_env import cli_env
from tests.support.lake import commit_file
from warehouse.publish import WarehouseBusyError, publish, stamp_ours

AK = "HARDENINGAK"
SK = "hardening-secret-key-0123456789abcdef"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BIN = Path(sys.executable).parent
COC_ETL = str(BIN / "coc-etl")
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    # small days (about a tenth of the default): no test here needs volume but the SIGTERM
    # one, which has its own simulator
    config = SimConfig(seed=5, days=4, now=NOW, tickets_per_day=(6, 8), max_batch_size=60)
    with SimulatorServer(config, ak=AK, sk=SK) as server:
        yield server


@pytest.fixture(autouse=True)
def no_faults(sim: SimulatorServer) -> Iterator[None]:
    sim.faults.reset()
    yield
    sim.faults.reset()


def _env(sim: SimulatorServer, warehouse: Path, **extra: str) -> dict[str, str]:
    return cli_env(sim, warehouse, ak=AK, sk=SK, **extra)


def _run(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _ingest(env: dict[str, str], *days: str) -> subprocess.CompletedProcess:
    return _run([COC_ETL, "ingest", *days], env)


def _one_line_error(done: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The run exited ``code`` with one line on stderr naming every needle, no secret."""
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    err = done.stderr.strip()
    assert "Traceback" not in err and "\n" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert SK not in done.stdout + done.stderr
    return err


def _published(warehouse: Path) -> dict[Path, bytes]:
    """The files the tables' Delta logs name, with their bytes."""
    lake = Lake(str(warehouse))
    named = [
        warehouse / table / p
        for table in DAY_TABLES  # the raw archive and the drift too
        for paths in lake.snapshot(table).files.values()
        for p in paths
    ]
    return {p: p.read_bytes() for p in sorted(named)}


def _uncommitted(warehouse: Path) -> list[Path]:
    """Data files that no commit names now (a run's, while it writes)."""
    named = set(_published(warehouse))
    return [p for p in sorted(warehouse.glob("*/dt=*/*.parquet")) if p not in named]


# -- F4, F6, F9: configuration refused before any request ---------------------------------------


# each case is a process (about 2 s); the other bounds are unit-tested in test_settings.py
@pytest.mark.parametrize(
    ("extra", "days", "needles"),
    [
        ({"COC_CONCURRENCY": "1000000"}, [], ["COC_CONCURRENCY", "1..256"]),
        ({"COC_CONCURRENCY": str(10**12)}, [], ["COC_CONCURRENCY"]),
        ({"COC_MAX_RPS": "nan"}, [], ["COC_MAX_RPS", "'nan'"]),
        ({"COC_TOKEN": "tok-hardening-secret"}, [], ["COC_TOKEN", "not both"]),
        ({"COC_TIMEZONE": "Mars/Olympus"}, [], ["COC_TIMEZONE", "Mars/Olympus"]),
        ({}, ["2023-12-31"], ["2023-12-31", "before 2024-01-01"]),
        ({}, ["9999-12-31"], ["9999-12-31", "in the future"]),
        ({}, ["2026-11-18", "--to", "9999-12-31"], ["--to 9999-12-31", "in the future"]),
    ],
)
def test_bad_settings_and_days_exit_2_before_any_request(
    sim: SimulatorServer, tmp_path: Path, extra: dict[str, str], days: list[str], needles: list[str]
) -> None:
    warehouse = tmp_path / "wh"
    sim.stats.reset()
    started = time.monotonic()
    done = _ingest(_env(sim, warehouse, **extra), *(days or ["2026-11-18"]))
    err = _one_line_error(done, 2, "configuration error", *needles)
    assert "tok-hardening-secret" not in err
    assert sim.stats.total == 0
    assert not list(warehouse.glob("*/dt=*"))
    assert time.monotonic() - started < 30  # refused at once, not after a run


def test_credentials_inside_the_endpoint_are_refused_and_never_echoed(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    host = sim.url.split("://", 1)[1]
    env = _env(sim, tmp_path / "wh", COC_ENDPOINT=f"http://admin:hunter2pw@{host}")
    err = _one_line_error(_ingest(env, "2026-11-18"), 2, "COC_ENDPOINT", "user or password")
    assert "hunter2pw" not in err


# -- F5, F8: what can be checked before fetching is checked first -------------------------------


def _not_writable(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return {"COC_WAREHOUSE": str(blocker / "wh")}


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("glob", ["COC_WAREHOUSE", "glob characters"]),
        ("unwritable", ["COC_WAREHOUSE", "not a folder this run can write"]),
        ("duckdb-folder", ["COC_DUCKDB", "is a folder"]),
        ("duckdb-proc", ["COC_DUCKDB", "/proc"]),
    ],
)
def test_preflight_refuses_an_unusable_warehouse_before_fetching(
    sim: SimulatorServer, tmp_path: Path, case: str, needles: list[str]
) -> None:
    env = _env(sim, tmp_path / "wh")
    if case == "glob":
        env["COC_WAREHOUSE"] = str(tmp_path / "w[x]")
    elif case == "unwritable":
        env.update(_not_writable(tmp_path))
    elif case == "duckdb-folder":
        (tmp_path / "folder.duckdb").mkdir()
        env["COC_DUCKDB"] = str(tmp_path / "folder.duckdb")
    else:
        env["COC_DUCKDB"] = "/proc/coc.duckdb"
    sim.stats.reset()
    _one_line_error(_ingest(env, "2026-11-18"), 2, *needles)
    assert sim.stats.total == 0, "the check must come before the first request"
    assert not list(tmp_path.glob("**/dt=*"))


def test_a_build_failure_after_publishing_exits_4_naming_the_days_and_stale_marts(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    env = _env(sim, warehouse)
    assert _ingest(env, "2026-11-18").returncode == 0
    broken = warehouse / "execution_instances" / "dt=2026-11-18" / "part-zz-broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")  # another day's file the build must read
    commit_file(warehouse, "execution_instances", date(2026, 11, 18), broken)
    done = _ingest(env, "2026-11-19")
    _one_line_error(done, 4, "published 2026-11-19", "marts are stale", "build-warehouse")
    assert list((warehouse / "execution_instances" / "dt=2026-11-19").glob("*.parquet"))


def _exec_after(prelude: str, command: list[str]) -> list[str]:
    """``command``, exec'd by a Python that first runs ``prelude`` (limits and signal
    dispositions survive exec; no ``preexec_fn`` in this threaded test process)."""
    launcher = f"import os, resource, signal, sys; {prelude}; os.execv(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", launcher, *command]


def test_a_full_disk_during_the_build_exits_4_and_leaves_no_build_file(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    measured = tmp_path / "measured"
    assert _ingest(_env(sim, measured), "2026-11-19").returncode == 0
    largest_parquet = max(p.stat().st_size for p in measured.glob("*/dt=*/*.parquet"))
    limit = int(largest_parquet * 1.3)
    assert (measured / "coc.duckdb").stat().st_size > limit, "the day is too small for this test"
    warehouse = tmp_path / "wh"
    # a disk that fills up once a file passes ``limit`` bytes
    prelude = f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))"
    done = _run(_exec_after(prelude, [COC_ETL, "ingest", "2026-11-19"]), _env(sim, warehouse))
    _one_line_error(done, 4, "published 2026-11-19", "File too large", "marts are stale")
    assert _published(warehouse), "the day's Parquet is published"
    assert not list(warehouse.glob("coc.duckdb*")), "no half-built DuckDB file left"


# -- F2: a DuckDB writer held across a rebuild -------------------------------------------------

WRITER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE analyst_notes AS SELECT 1 AS x")
print("ready", flush=True)
sys.stdin.readline()
con.execute("CHECKPOINT")
con.execute("CREATE TABLE analyst_more AS SELECT 2 AS y")
con.close()
"""


def test_a_live_duckdb_writer_is_named_and_the_file_stays_readable(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    """Before: the build deleted the writer's WAL and swapped the file in under it; the
    writer's next checkpoint made the file unreadable for every new reader."""
    warehouse = tmp_path / "wh"
    env = _env(sim, warehouse)
    assert _ingest(env, "2026-11-18").returncode == 0
    target = warehouse / "coc.duckdb"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline().strip() == "ready"
        sim.stats.reset()
        done = _ingest(env, "2026-11-19")
        _one_line_error(done, 2, f"process {writer.pid}", "ATTACH", "read-only")
        assert sim.stats.total == 0
        rebuilt = _run([COC_ETL, "build-warehouse"], env)
        # checked before the build as before a run: exit 2, as the README's table says
        _one_line_error(rebuilt, 2, f"process {writer.pid}")
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.wait(timeout=60) == 0
    finally:
        writer.kill()
        writer.wait()
    report = _run([COC_ETL, "report", "--days", "3"], env)  # readable, nothing lost
    assert report.returncode == 0, report.stderr
    con = duckdb.connect(str(target), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert {"analyst_notes", "analyst_more"} <= tables
    con.close()
    assert _ingest(env, "2026-11-19").returncode == 0  # once the writer is gone
    con = duckdb.connect(str(target), read_only=True)
    days = con.execute("SELECT DISTINCT dt FROM execution_instances ORDER BY 1").fetchall()
    assert days == [(date(2026, 11, 18),), (date(2026, 11, 19),)]


def test_the_swap_itself_refuses_a_writer_that_came_after_the_checks(tmp_path: Path) -> None:
    """The pre-flight check and the swap are moments apart; the swap holds the lock itself."""
    target = tmp_path / "coc.duckdb"
    with duckdb.connect(str(target)) as old:
        old.execute("CREATE TABLE old AS SELECT 1 AS x")
        stamp_ours(old)  # a file the build wrote: the only kind it replaces
    built = tmp_path / "coc.duckdb.tmp-1-1"
    duckdb.connect(str(built)).execute("CREATE TABLE new AS SELECT 2 AS x").close()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseBusyError, match=f"process {writer.pid}"):
            publish(built, target)
    finally:
        writer.kill()
        writer.wait()
    con = duckdb.connect(str(target), read_only=True)
    assert {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()} == {
        "old",
        "analyst_notes",
        "written_by",
    }
    con.close()
    publish(built, target)  # the writer is gone: the swap goes ahead
    con = duckdb.connect(str(target), read_only=True)
    assert con.execute("SELECT x FROM new").fetchall() == [(2,)]


# -- F3: the zone of the partitions --------------------------------------------------------------


def test_another_zone_is_refused_until_the_warehouse_is_repartitioned(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    env = _env(sim, warehouse)
    assert _ingest(env, "2026-11-17", "--to", "2026-11-19").returncode == 0
    assert json.loads((warehouse / "_warehouse.json").read_text())["timezone"] == "UTC"
    shanghai = {**env, "COC_TIMEZONE": "Asia/Shanghai"}
    sim.stats.reset()
    _one_line_error(_ingest(shanghai, "2026-11-20"), 2, "Asia/Shanghai", "UTC", "repartition")
    assert sim.stats.total == 0

    con = duckdb.connect(str(warehouse / "coc.duckdb"), read_only=True)
    before = con.execute("SELECT count(*), count(DISTINCT execute_uuid) FROM script_orders")
    tickets, _ = before.fetchone() or (0, 0)
    instances = con.execute("SELECT count(*) FROM execution_instances").fetchone()
    con.close()

    done = _run([COC_ETL, "repartition", "--timezone", "Asia/Shanghai"], env)
    assert done.returncode == 0, done.stderr
    assert "partial" in done.stdout and "coc-etl ingest 2026-11-17" in done.stdout
    manifest = json.loads((warehouse / "_warehouse.json").read_text())
    assert manifest == {"timezone": "Asia/Shanghai", "repartitioning_to": None}
    assert not (warehouse / "_repartition").exists()

    con = duckdb.connect(str(warehouse / "coc.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM execution_instances").fetchone() == instances
    orders = con.execute("SELECT execute_uuid, created_at, dt FROM script_orders").fetchall()
    assert len(orders) == len({o[0] for o in orders}) == tickets  # no ticket in two days
    zone = ZoneInfo("Asia/Shanghai")
    assert all(created.astimezone(zone).date() == dt for _, created, dt in orders)
    moved = con.execute(
        """SELECT count(*) FROM execution_instances i JOIN script_orders o USING (execute_uuid)
           WHERE i.dt <> o.dt"""
    ).fetchone()
    assert moved == (0,)  # instances went with their ticket
    con.close()
    # now the warehouse is Shanghai's: a Shanghai run is accepted, a UTC one refused
    assert _ingest(shanghai, "2026-11-20").returncode == 0
    _one_line_error(_ingest(env, "2026-11-20"), 2, "COC_TIMEZONE is UTC")


# -- F7: SIGTERM and build debris ---------------------------------------------------------------


@dataclass(frozen=True)
class SlowDay:
    sim: SimulatorServer
    warehouse: Path
    requests: int  # what a clean run of the day asked


@pytest.fixture(scope="module")
def published_slow_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlowDay]:
    """A simulator with a day big enough to stage more than a flush of rows, and a warehouse
    where a clean run published that day; each SIGTERM case interrupts a copy of it."""
    config = SimConfig(seed=11, days=2, now=NOW, tickets_per_day=(60, 60))
    with SimulatorServer(config, ak=AK, sk=SK) as slow:
        warehouse = tmp_path_factory.mktemp("published") / "wh"
        slow.stats.reset()
        done = _ingest(_env(slow, warehouse), "2026-11-20")
        assert done.returncode == 0, done.stderr[-2000:]
        yield SlowDay(slow, warehouse, slow.stats.total)


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_sigterm_aborts_as_cleanly_as_sigint(
    published_slow_day: SlowDay, tmp_path: Path, sigint: str
) -> None:
    """``sigint=ignored`` is a command started with ``&`` from a script."""
    slow = published_slow_day.sim
    warehouse = tmp_path / "wh"
    shutil.copytree(published_slow_day.warehouse, warehouse)
    env = _env(slow, warehouse)
    before = _published(warehouse)
    assert before, "the clean run published the day"
    # The same run again is served at full speed for all but its last few requests, then
    # throttled to one answer a minute: it has fetched (and so stages) more than a flush
    # of rows and cannot finish before the signal, however loaded the machine is.
    slow.faults.reset()
    slow.faults.update(
        rate_limit=1 / 60, rate_burst=published_slow_day.requests - 4, retry_after_s=5
    )
    command = [COC_ETL, "ingest", "2026-11-20"]
    if sigint == "ignored":
        command = _exec_after("signal.signal(signal.SIGINT, signal.SIG_IGN)", command)
    run = subprocess.Popen(
        command,
        env={**env, "COC_CONCURRENCY": "4"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not _uncommitted(warehouse):
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the run staged no file"
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        slow.faults.reset()
    assert run.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    assert not _uncommitted(warehouse), "the run's files left behind"
    assert _published(warehouse) == before


ASLEEP = """
import asyncio, signal
from pipelines.cli import _Terminated
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under ``&`` in a script
terminated = _Terminated()
signal.signal(signal.SIGTERM, terminated)
async def main():
    print("ready", flush=True)
    await asyncio.sleep(3600)  # the loop's only timer: an hour away
try:
    asyncio.run(main())
except asyncio.CancelledError:
    print("cancelled", terminated.received, flush=True)
"""


def test_sigterm_wakes_an_event_loop_asleep_until_its_next_timer() -> None:
    """With SIGINT ignored, SIGTERM cancels the loop's tasks from a signal handler; the loop
    must be woken to run the cancellations, not left asleep until its next timer (a retry's
    back-off, here an hour: without the wake-up the child is still asleep at the timeout)."""
    child = subprocess.Popen(
        [sys.executable, "-c", ASLEEP], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert out.strip() == "cancelled True"


DEAD_BUILD = """
import os, sys, duckdb
con = duckdb.connect(sys.argv[1] + ".tmp-%d-1" % os.getpid())
con.execute("CREATE TABLE half AS SELECT range AS x FROM range(1000)")
os._exit(9)  # as if killed mid-build: the file and its .wal stay
"""


def test_the_build_removes_the_debris_of_dead_builds_only(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    env = _env(sim, warehouse)
    assert _ingest(env, "2026-11-18").returncode == 0
    target = warehouse / "coc.duckdb"
    for _ in range(3):
        subprocess.run([sys.executable, "-c", DEAD_BUILD, str(target)], check=False)
    debris = sorted(warehouse.glob("coc.duckdb.tmp-*"))
    assert len(debris) >= 3
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live_tmp = warehouse / f"coc.duckdb.tmp-{alive.pid}-7"
        live_tmp.write_bytes(b"a build still running")
        done = _run([COC_ETL, "build-warehouse"], env)
        assert done.returncode == 0, done.stderr
        assert sorted(warehouse.glob("coc.duckdb.tmp-*")) == [live_tmp]
    finally:
        alive.kill()
        alive.wait()


# -- F8: the retry budget is a setting ---------------------------------------------------------


def test_the_retry_budget_is_a_setting_the_exit_message_names(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    env = _env(sim, warehouse, COC_MAX_ATTEMPTS="1")
    sim.faults.update(error_rate=0.5)
    done = _ingest(env, "2026-11-18")
    err = _one_line_error(done, 3, "gave up after 1 attempts", "COC_MAX_ATTEMPTS", "now 1")
    assert "COC_RETRY_BUDGET_S" in err
    assert not list(warehouse.glob("*/dt=*"))


# -- F9: messages that mislead or leak ---------------------------------------------------------


def test_an_interrupted_range_names_the_published_days_and_builds_for_them(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    env = _env(sim, warehouse)
    start, end = sim.dataset.day_window("2026-11-19")
    victim = sim.dataset.tickets_in_window(start, end, now=NOW)[0].execute_uuid
    sim.faults.update(forced={victim: 403})
    done = _ingest(env, "2026-11-17", "--to", "2026-11-19")
    err = _one_line_error(done, 3, f"ticket={victim}", "403")
    assert "published before it stopped: 2026-11-17, 2026-11-18" in err
    assert "coc.duckdb rebuilt over them" in err and "unchanged" not in err
    con = duckdb.connect(str(warehouse / "coc.duckdb"), read_only=True)
    days = con.execute("SELECT DISTINCT dt FROM failure_rates_daily ORDER BY 1").fetchall()
    assert days == [(date(2026, 11, 17),), (date(2026, 11, 18),)]


def test_report_arguments_are_checked_in_one_line(sim: SimulatorServer, tmp_path: Path) -> None:
    env = _env(sim, tmp_path / "wh")
    days0 = _run([COC_ETL, "report", "--days", "0"], env)
    assert days0.returncode == 2 and "--days" in days0.stderr and "Traceback" not in days0.stderr
    text = tmp_path / "notes.duckdb"
    text.write_text("just some notes, not a database\n")
    _one_line_error(
        _run([COC_ETL, "report", "--duckdb", str(text)], env), 2, "--duckdb", "not a DuckDB"
    )
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    _one_line_error(
        _run([COC_ETL, "report", "--duckdb", str(other)], env), 2, "coc-etl did not build"
    )


def test_help_names_the_variables_exit_codes_and_every_simulator_option() -> None:
    ingest = _run([COC_ETL, "ingest", "--help"], dict(os.environ)).stdout
    for needle in (
        "COC_ENDPOINT",
        "COC_WAREHOUSE",
        "COC_CONCURRENCY",
        "1..256",
        "COC_MAX_ATTEMPTS",
    ):
        assert needle in ingest
    assert "exit codes" in ingest and "143 terminated" in ingest
    report = _run([COC_ETL, "report", "--help"], dict(os.environ)).stdout
    assert "the key of each line" in report
    simulator = _run([COC_ETL, "simulator", "--help"], dict(os.environ)).stdout
    for option in ("--latency-ms", "--invalid-body-rate", "--max-batch-size", "--fault-seed"):
        line = next(
            i for i, text in enumerate(simulator.splitlines()) if text.strip().startswith(option)
        )
        following = simulator.splitlines()[line : line + 2]
        assert any(len(text.split()) > 2 for text in following), following


def test_the_progress_total_says_it_is_what_was_listed_so_far() -> None:
    stats = WalkStats(day="2026-11-20")
    stats.listed = 210
    assert _listed(stats) == "210 listed so far"
    stats.list_total = 268
    assert _listed(stats) == "268"


# -- F6 under Dagster: a load error that names the variable -------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "value"), [("COC_TIMEZONE", "Mars/Olympus"), ("COC_LOOKBACK_DAYS", "-1")]
)
def test_dagster_refuses_to_load_naming_the_variable(
    sim: SimulatorServer, tmp_path: Path, name: str, value: str
) -> None:
    env = _env(sim, tmp_path / "wh", **{name: value})
    (tmp_path / "dagster_home").mkdir(exist_ok=True)  # cli_env makes it too
    done = _run(materialize_command("--partition", "2026-11-18"), env)
    assert done.returncode != 0
    assert name in done.stdout + done.stderr
    assert not (tmp_path / "wh" / "execution_instances").exists()
