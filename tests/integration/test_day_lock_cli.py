"""One day, two ``coc-etl ingest`` processes: never two live runs, one clean copy at the end.

Real processes against the simulator over loopback. The first run is slowed down with
``COC_MAX_RPS``; the second, started while the first holds the day, waits for it (before it
asks the API anything) and then replaces the day whole. A run killed with SIGKILL leaves its
staging and its lock file; the next run takes the day at once and removes them.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from pipelines.extract.walk import day_window
from pipelines.lake.day_writer import DayLockedError, DayWriter
from pipelines.lake.publish import STAGING
from pipelines.lake.tables import Lake, run_of
from tests.support.cli_env import cli_env
from tests.support.simulator import Simulators

AK = "DAYLOCKTESTAK"
SK = "day-lock-test-secret-key-0123456789"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = date(2026, 11, 19)
BIN = Path(sys.executable).parent
REPO = Path(__file__).parents[2]
TABLES = ("execution_instances", "script_orders", "order_batches")


@pytest.fixture(scope="module")
def big_sim(module_simulators: Simulators) -> SimulatorServer:
    # enough instances for a row group (10,000 rows) to be staged well before the day is done
    config = SimConfig(seed=5, days=2, now=NOW, instances_per_day=16_000)
    return module_simulators.start(config, ak=AK, sk=SK)


@pytest.fixture(scope="module")
def small_sim(module_simulators: Simulators) -> SimulatorServer:
    config = SimConfig(seed=5, days=2, now=NOW, tickets_per_day=(8, 8), max_batch_size=60)
    return module_simulators.start(config, ak=AK, sk=SK)


@pytest.fixture
def start(tmp_path: Path):
    """Start ``coc-etl ingest`` runs; any still going at the end of the test is killed."""
    runs: list[Run] = []

    def start(sim: SimulatorServer, name: str) -> Run:
        runs.append(Run(sim, tmp_path / "wh", tmp_path / f"{name}.log"))
        return runs[-1]

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


class Run:
    """One ``coc-etl ingest DAY`` process, its output (stdout and stderr) going to a file."""

    def __init__(self, sim: SimulatorServer, warehouse: Path, log: Path) -> None:
        env = cli_env(sim, warehouse, ak=AK, sk=SK)
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "coc-etl"), "ingest", DAY.isoformat()],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        return self.log.read_text()

    def finish(self) -> tuple[int, str]:
        return self.proc.wait(timeout=180), self.output

    def wait_until(self, what: str, ready: Callable[[], Any], timeout: float = 90) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := ready()):
            if self.proc.poll() is not None:
                pytest.fail(f"the run ended before {what}: {self.output[-3000:]}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.02)
        return value


def _holder(warehouse: Path) -> dict | None:
    """Who signed the day's lock file, once someone has."""
    try:
        return json.loads((warehouse / STAGING / f"dt={DAY}" / ".lock").read_text())
    except (OSError, ValueError):
        return None


def _truth(sim: SimulatorServer) -> list[tuple]:
    from zoneinfo import ZoneInfo

    start, end = day_window(DAY, ZoneInfo("UTC"))
    keys = []
    for ticket in sim.dataset.tickets_in_window(start, end, now=NOW):
        for batch in ticket.batches:
            for item in sim.dataset.instances(ticket, batch.index, now=NOW):
                keys.append((ticket.execute_uuid, batch.index, item["id"]))
    return sorted(keys)


def _named(warehouse: Path, table: str) -> list[str]:
    """The files the table's Delta log names for the day."""
    return [str(warehouse / table / p) for p in Lake(str(warehouse)).snapshot(table).files[DAY]]


def _landed(warehouse: Path) -> list[tuple]:
    with duckdb.connect() as con:
        return con.execute(
            "SELECT execute_uuid, batch_index, instance_id FROM read_parquet(?) ORDER BY ALL",
            [_named(warehouse, "execution_instances")],
        ).fetchall()


def _published_runs(warehouse: Path) -> set[str]:
    """The runs of the day's published files (those the logs name), over every table."""
    names = [name for t in TABLES for name in _named(warehouse, t)]
    assert len(names) == len(TABLES), names  # one file per table
    return {run_of(name) or name for name in names}


@pytest.mark.slow
def test_a_second_run_of_the_day_waits_for_the_first(
    small_sim: SimulatorServer, start, tmp_path: Path
) -> None:
    sim, warehouse = small_sim, tmp_path / "wh"
    sim.stats.reset()
    sim.faults.update(latency_ms=1000)  # the first run crawls until the second is waiting
    try:
        first = start(sim, "first")
        holder = first.wait_until("the first run holds the day", lambda: _holder(warehouse))
        second = start(sim, "second")
        second.wait_until("the second run waits", lambda: "waiting for" in second.output)
        # a writer that will not wait is told at once who holds the day
        with pytest.raises(DayLockedError) as info:
            DayWriter(root=str(warehouse), day=DAY, lock_timeout_s=0).__enter__()
    finally:
        sim.faults.reset()
    code1, out1 = first.finish()
    code2, out2 = second.finish()
    assert code1 == 0, out1[-3000:]
    assert code2 == 0, out2[-3000:]
    assert holder["pid"] == first.pid
    assert f"day {DAY} is being written by run {holder['run_id']} (pid {first.pid} on " in str(
        info.value
    )
    assert f"waiting for run {holder['run_id']} (pid {first.pid} on " in out2
    assert f"to finish {DAY}" in out2
    # the second run asked nothing while it waited: both made the day's minimum, no more
    requests = [int(m[1]) for out in (out1, out2) if (m := re.search(r" (\d+) requests", out))]
    assert len(requests) == 2 and requests[0] == requests[1]
    assert sim.stats.total == sum(requests)

    # one clean copy: the second run's, whole; the simulator's rows exactly once
    (run,) = _published_runs(warehouse)
    assert run != holder["run_id"]
    truth = _truth(sim)
    assert _landed(warehouse) == truth and len(set(truth)) == len(truth)
    assert not (warehouse / STAGING / f"dt={DAY}").exists()
    assert SK not in out1 + out2


@pytest.mark.slow
def test_a_killed_run_leaves_files_that_no_reader_sees_and_the_next_run_publishes(
    big_sim: SimulatorServer, start, tmp_path: Path
) -> None:
    sim, warehouse = big_sim, tmp_path / "wh"
    day_folder = warehouse / "execution_instances" / f"dt={DAY}"
    doomed = start(sim, "doomed")
    staged = doomed.wait_until(
        "a row group is written",
        lambda: [p for p in day_folder.glob("*.parquet") if p.stat().st_size],
    )
    doomed.proc.send_signal(signal.SIGKILL)
    assert doomed.proc.wait(10) == -signal.SIGKILL
    dead_run = run_of(staged[0].name)
    assert dead_run is not None
    assert DAY not in Lake(str(warehouse)).snapshot("execution_instances").files  # unpublished

    code, out = start(sim, "next").finish()
    assert code == 0, out[-3000:]
    assert "waiting for" not in out  # a dead run's lock is free at once
    assert not (warehouse / STAGING / f"dt={DAY}").exists()
    (run,) = _published_runs(warehouse)
    assert run != dead_run
    assert staged[0].exists()  # named by no commit, never read; the vacuum's to remove
    assert _landed(warehouse) == _truth(sim)
