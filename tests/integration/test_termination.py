"""SIGTERM stops a run as cleanly as SIGINT, with SIGINT ignored too (a command started with
``&`` from a script): exit 143, one line, the run's files gone, what was published intact."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from tests.support.ingest_runs import (
    AK,
    COC_ETL,
    NOW,
    ROOT,
    SK,
    committed,
    exec_after,
    ingest,
    ingest_env,
    uncommitted,
)

#: a day big enough to stage more than a flush of rows
pytestmark = pytest.mark.simulator(
    SimConfig(seed=11, days=2, now=NOW, tickets_per_day=(60, 60)), ak=AK, sk=SK
)


@dataclass(frozen=True)
class SlowDay:
    sim: SimulatorServer
    warehouse: Path
    requests: int  # what a clean run of the day asked


@pytest.fixture(scope="module")
def published_slow_day(
    module_sim: SimulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> SlowDay:
    """The module's simulator, and a warehouse where a clean run published its big day;
    each SIGTERM case interrupts a copy of it."""
    slow = module_sim
    warehouse = tmp_path_factory.mktemp("published") / "wh"
    slow.stats.reset()
    done = ingest(ingest_env(slow, warehouse), "2026-11-20")
    assert done.returncode == 0, done.stderr[-2000:]
    return SlowDay(slow, warehouse, slow.stats.total)


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_sigterm_aborts_as_cleanly_as_sigint(
    published_slow_day: SlowDay, tmp_path: Path, sigint: str
) -> None:
    """``sigint=ignored`` is a command started with ``&`` from a script."""
    slow = published_slow_day.sim
    warehouse = tmp_path / "wh"
    shutil.copytree(published_slow_day.warehouse, warehouse)
    env = ingest_env(slow, warehouse)
    before = committed(warehouse)
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
        command = exec_after("signal.signal(signal.SIGINT, signal.SIG_IGN)", command)
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
        while not uncommitted(warehouse):
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
    assert not uncommitted(warehouse), "the run's files left behind"
    assert committed(warehouse) == before


ASLEEP = """
import asyncio, signal
from coc_etl.cli import _Terminated
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
