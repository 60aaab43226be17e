"""An object store that stops answering (moto's S3 server under ``kill -STOP``) never hangs a run.

Every call to the store waits at most its connect and request timeouts, is retried within a
budget, then fails: ``coc-etl ingest`` exits 4 with one line naming the day. And SIGTERM
ends a run within seconds even while a call to the stopped store is in flight. The store is
continued and stopped at the end; the day published before stays as it was.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from pipelines.lake.tables import Lake, storage_options
from pipelines.settings import warehouse_settings_from_env
from tests.support.s3server import S3Server

AK, SK = "HUNGAK", "hung-secret-0123456789"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = "2026-11-18"
COC_ETL = str(Path(sys.executable).with_name("coc-etl"))
REPO = Path(__file__).parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.simulator(
        SimConfig(seed=6, days=3, now=NOW, tickets_per_day=(6, 6), max_batch_size=40), ak=AK, sk=SK
    ),
]


@pytest.fixture
def store() -> Iterator[S3Server]:
    """A moto server of this test's own: it is stopped and continued."""
    with S3Server.start() as server:
        try:
            yield server
        finally:
            os.kill(server.pid, signal.SIGCONT)


def env(sim: SimulatorServer, s3: S3Server, tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COC_"))}
    return (
        base
        | s3.env(f"s3://{s3.bucket()}/coc")
        | {
            "COC_ENDPOINT": sim.url,
            "COC_AK": AK,
            "COC_SK": SK,
            "COC_MAX_RPS": "0",
            "COC_DUCKDB": str(tmp_path / "coc.duckdb"),
            "PYTHONPATH": str(REPO),
        }
        | extra
    )


def version(environment: dict[str, str]) -> int | None:
    wh = warehouse_settings_from_env(environment)
    lake = Lake(wh.warehouse, options=storage_options(wh.object_store))
    return lake.snapshot("execution_instances").version


def start_and_stop_the_store(
    sim: SimulatorServer, s3: S3Server, environment: dict[str, str]
) -> subprocess.Popen[str]:
    """Publish the day once, then start a run of it again and stop the store mid-run."""
    first = subprocess.run(
        [COC_ETL, "ingest", DAY], env=environment, capture_output=True, text=True, timeout=180
    )
    assert first.returncode == 0, first.stderr
    sim.stats.reset()
    sim.faults.update(latency_ms=150)  # the walk takes seconds: the store stops during it
    run = subprocess.Popen(
        [COC_ETL, "ingest", DAY], env=environment, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while sim.stats.total < 5:  # past the pre-flight: asking the API
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(s3.pid, signal.SIGSTOP)
    return run


def test_a_stopped_store_fails_the_run_within_its_timeouts_with_exit_4(
    sim: SimulatorServer, store: S3Server, tmp_path: Path
) -> None:
    environment = env(sim, store, tmp_path, COC_S3_TIMEOUT_S="1", COC_S3_CONNECT_TIMEOUT_S="1")
    run = start_and_stop_the_store(sim, store, environment)
    try:
        _, err = run.communicate(timeout=120)  # the budget: a few timeouts, not the outage
    finally:
        sim.faults.reset()
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 4, err
    lines = [ln for ln in err.splitlines() if ln.startswith("coc-etl:")]
    assert len(lines) == 1 and f"day={DAY}" in lines[0], err
    assert store.secret_access_key not in err
    os.kill(store.pid, signal.SIGCONT)
    assert version(environment) is not None  # the day published before is still there


def test_sigterm_ends_a_run_within_seconds_while_the_store_hangs(
    sim: SimulatorServer, store: S3Server, tmp_path: Path
) -> None:
    environment = env(sim, store, tmp_path)  # default timeouts: a minute per call
    before = None
    run = start_and_stop_the_store(sim, store, environment)
    try:
        time.sleep(2)  # a call to the stopped store is in flight by now
        sent = time.monotonic()
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        sim.faults.reset()
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    assert waited < 30  # seconds, not the store's outage
    os.kill(store.pid, signal.SIGCONT)
    assert version(environment) != before
