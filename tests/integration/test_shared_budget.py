"""What runs share through Redis (``COC_REDIS_URL``), against a real redis-server: the
account's request budget, and the leases that keep a day and the build to one run at once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from bench.shared_rate import RPS, redis_server, runs_at_once
from coc_simulator import SimConfig, SimulatorServer
from pipelines.coc.settings import ClientSettings
from pipelines.coc.shared_rate import SharedRateBudget
from pipelines.ingest import ingest_days
from pipelines.locks.shared import LockBusyError, SharedLease
from pipelines.settings import WarehouseSettings
from tests.conftest import SIM_NOW
from tests.support.setup_lock import ensure_cluster_services
from tests.support.simulator import Simulators

DAYS = [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server on a free loopback port, stopped by its PID."""
    ensure_cluster_services()
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def test_budget_slots_are_spaced_for_everyone_who_shares_the_key(redis_url: str) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> None:
        a = SharedRateBudget(redis_url, key="test:spacing", max_rps=20, sleep=record)
        b = SharedRateBudget(redis_url, key="test:spacing", max_rps=20, sleep=record)
        async with a, b:
            for _ in range(5):
                await asyncio.gather(a.take(), b.take())

    asyncio.run(main())
    # ten slots at 20/s: the last is 9/20 s after the first, whichever budget asked
    assert len(waits) >= 9
    assert max(waits) == pytest.approx(9 / 20, abs=0.05)


def test_an_unreachable_redis_is_a_configuration_error_naming_the_variable() -> None:
    async def main() -> None:
        async with SharedRateBudget("redis://:pw@127.0.0.1:1/0", key="k", max_rps=5):
            pass

    with pytest.raises(Exception, match=r"COC_REDIS_URL redis://:\*\*\*@127.0.0.1:1/0") as info:
        asyncio.run(main())
    assert "pw" not in str(info.value)


@pytest.mark.slow
def test_runs_at_once_share_the_account_budget(
    simulators: Simulators, redis_url: str, tmp_path: Path
) -> None:
    """Three runs at once, each told COC_MAX_RPS=R, against a gateway that allows R: with the
    shared budget fewer than 1% of requests meet a 429; without it, each paces to R alone and
    the gateway throttles them (the check the budget is measured against). The gate's
    adaptation to 429s is off in both, so that the budget is what holds the rate. The runs
    without the budget go first, and the Redis client is imported before the clock starts.
    How close the runs come to the time R allows is a speed figure, measured by
    bench/shared_rate.py (target 1.1x), not asserted here."""
    import redis.asyncio  # noqa: F401

    sim = simulators.start(SimConfig(now=SIM_NOW, days=3, tickets_per_day=(12, 16)))
    sim.faults.rate_limit = RPS
    time.sleep(1.0)  # the gateway's bucket full, as for any run that starts
    alone = runs_at_once(sim, None, tmp_path / "alone")
    print(f"each run alone: {alone}")
    assert alone.throttled / alone.requests > 0.01

    time.sleep(1.0)
    shared = runs_at_once(sim, redis_url, tmp_path / "shared")
    print(
        f"shared budget: {shared}, {shared.ratio:.3f}x the budget's time, "
        f"requests {shared.requests_ratio:.3f}x their schedule"
    )
    assert shared.throttled / shared.requests < 0.01


_HOLD = """
import sys, time
from pipelines.locks.shared import SharedLease
lease = SharedLease(sys.argv[1], key="test:dead", what="day X", run_id="dead-run", ttl_s=1.0)
lease.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_a_busy_lease_names_its_holder_and_a_dead_holders_lease_lapses(redis_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, redis_url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = SharedLease(redis_url, key="test:dead", what="day X", timeout_s=0.5, ttl_s=1.0)
        with pytest.raises(LockBusyError, match=r"day X is being written by run dead-run"):
            busy.acquire()
        time.sleep(1.5)  # alive, the holder keeps renewing its lease past its ttl
        with pytest.raises(LockBusyError):
            busy.acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        # the dead holder's lease lapses with its ttl (1 s): a lease that outlived its holder
        # would keep the taker waiting until its own timeout, then raise LockBusyError
        taker = SharedLease(redis_url, key="test:dead", what="day X", timeout_s=5, ttl_s=1.0)
        with taker:
            assert not taker.lost  # taken: the with block is only entered holding it
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_two_runs_of_one_day_take_turns(
    simulator: SimulatorServer, redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two ingestions of one day into one warehouse at once, with the shared lease: the
    second waits for the first, and the day ends as one clean copy."""
    sim = simulator
    client = ClientSettings(endpoint=sim.url, max_rps=None, redis_url=redis_url)
    wh = WarehouseSettings(
        warehouse=str(tmp_path / "wh"),
        duckdb_path=str(tmp_path / "coc.duckdb"),
        redis_url=redis_url,
    )
    rows: list[int] = []

    def run() -> None:
        rows.append(ingest_days(client, wh, [DAYS[-1]])[0].rows)

    threads = [threading.Thread(target=run) for _ in range(2)]
    with caplog.at_level("WARNING", logger="pipelines.locks.shared"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(rows) == 2 and rows[0] == rows[1] > 0
    waited = [r for r in caplog.records if r.getMessage().startswith("waiting for run")]
    assert len(waited) == 1, [r.getMessage() for r in caplog.records]
    assert f"day {DAYS[-1]}" in waited[0].getMessage()

    from pipelines.lake.tables import Lake

    table = tmp_path / "wh" / "execution_instances"
    live = [
        str(table / f)
        for fs in Lake(str(tmp_path / "wh")).snapshot(table.name).files.values()
        for f in fs
    ]
    con = duckdb.connect()
    try:  # the files of the table's newest version (a replaced copy stays until vacuumed)
        landed = con.execute(
            "SELECT count(*), count(DISTINCT (execute_uuid, batch_index, instance_id)) "
            "FROM read_parquet($files)",
            {"files": live},
        ).fetchone()
    finally:
        con.close()
    assert landed == (rows[0], rows[0])


def test_a_lease_taken_away_is_noticed_by_its_holder(redis_url: str) -> None:
    import redis

    lease = SharedLease(redis_url, key="test:lapse", what="day Y", ttl_s=0.3)
    with lease:
        assert not lease.lost
        other = redis.Redis.from_url(redis_url)
        try:
            other.delete("test:lapse")  # as if it had lapsed while Redis was away
            other.set("test:lapse", "someone else")
        finally:
            other.close()
        time.sleep(0.4)  # a heartbeat or more
        assert lease.lost
    other = redis.Redis.from_url(redis_url)
    try:  # the holder's release left the new holder's key alone
        assert other.get("test:lapse") == b"someone else"
    finally:
        other.close()
