"""The account's budget shared by runs at once (``COC_REDIS_URL``): where their time goes.

``python -m bench.shared_rate [--repeats N]``: a redis-server (started here, stopped by its
PID) and the simulator in a thread, whose gateway allows ``RPS`` requests/s (a token bucket
of one second's tokens, full when the runs start). Three runs at once, one day each, each
told ``COC_MAX_RPS=RPS`` and with the gate's adaptation to 429s off, so that the shared
budget alone holds the rate; then the same runs without the budget, for comparison. Each
run's requests are timed at the client, so the wall time splits into:

- start-up: from the runs' start to the first request (event loop, HTTP client, Redis);
- the requests: first request to last answer, against the (N-1)/RPS the schedule needs;
- the tail: last answer to the last run's end (its Parquet written and published).

The test (``tests/integration/test_shared_budget.py``) runs ``runs_at_once`` once and checks
the acceptance; this prints the medians of several and writes
``bench/results/shared-rate.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx

from bench.core import RESULTS_DIR
from coc_simulator import SimConfig, SimulatorServer
from pipelines.coc.settings import ClientSettings
from pipelines.ingest import ingest_days
from pipelines.settings import WarehouseSettings

#: low enough that three clients and the simulator keep up on 2 shared cores
RPS = 30.0
DAYS = (date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25))
#: the simulator's clock and data (``tests.conftest.SIM_NOW``, 3 days of 12-16 tickets)
SIM_NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
#: no snapshots, no append-only file: a scratch Redis
_SPARE = ("--save", "", "--appendonly", "no")


@dataclass(frozen=True, kw_only=True)
class RunsAtOnce:
    """One measurement: the runs' requests as the gateway counted them, and the time."""

    requests: int
    throttled: int
    seconds: float
    #: the runs' start to the first request sent by any of them
    start_up_s: float
    #: the first request sent to the last answer received
    requests_s: float
    #: the last answer to the end of the last run
    tail_s: float
    rps: float

    @property
    def budget_s(self) -> float:
        """The time the budget allows the runs' requests: N / COC_MAX_RPS."""
        return self.requests / self.rps

    @property
    def ratio(self) -> float:
        """Wall time over the budget's time (start-up and the final writes included)."""
        return self.seconds / self.budget_s

    @property
    def requests_ratio(self) -> float:
        """The requests' span over what the schedule needs for them, (N - 1) / rps."""
        return self.requests_s / ((self.requests - 1) / self.rps)


class _Timed(httpx.AsyncBaseTransport):
    """httpx's transport, noting when each request went and its answer came."""

    def __init__(self, sent: list[float], answered: list[float]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._sent, self._answered = sent, answered

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._sent.append(time.monotonic())
        response = await self._inner.handle_async_request(request)
        self._answered.append(time.monotonic())
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def runs_at_once(
    sim: SimulatorServer, redis_url: str | None, root: Path, rps: float = RPS
) -> RunsAtOnce:
    """One run per day of ``DAYS``, all at once (threads), each with ``COC_MAX_RPS=rps``
    and no adaptation, sharing the budget through ``redis_url`` (None: each paces alone).

    The simulator's counters are reset here.
    """
    sim.stats.reset()
    errors: list[BaseException] = []
    sent: list[float] = []
    answered: list[float] = []

    def run(day: date) -> None:
        try:
            client = ClientSettings(
                endpoint=sim.url,
                max_rps=rps,
                adaptive=False,
                redis_url=redis_url,
                transport="httpx",
            )
            wh = WarehouseSettings(
                warehouse=str(root / day.isoformat()), duckdb_path=str(root / f"{day}.duckdb")
            )
            ingest_days(client, wh, [day], transport=_Timed(sent, answered))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(day,)) for day in DAYS]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended = time.monotonic()
    if errors:
        raise errors[0]
    return RunsAtOnce(
        requests=sim.stats.count(),
        throttled=sim.stats.count(status=429),
        seconds=ended - started,
        start_up_s=min(sent) - started,
        requests_s=max(answered) - min(sent),
        tail_s=ended - max(answered),
        rps=rps,
    )


def warm_up(sim: SimulatorServer, root: Path) -> None:
    """One unmeasured run in this process: the imports a run does on first use, done."""
    import redis.asyncio  # noqa: F401  (the budget imports it when a run opens it)

    ingest_days(
        ClientSettings(endpoint=sim.url, max_rps=None),
        WarehouseSettings(warehouse=str(root), duckdb_path=str(root / "coc.duckdb")),
        [DAYS[0]],
    )


@contextmanager
def redis_server(data: Path) -> Iterator[str]:
    """A scratch redis-server on a free loopback port, stopped by its PID; its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data), *_SPARE],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def measure(repeats: int) -> dict[str, object]:
    shared: list[RunsAtOnce] = []
    alone: list[RunsAtOnce] = []
    config = SimConfig(now=SIM_NOW, days=3, tickets_per_day=(12, 16))
    with tempfile.TemporaryDirectory() as tmp, SimulatorServer(config) as sim:
        root = Path(tmp)
        with redis_server(root) as url:
            warm_up(sim, root / "warm")
            for i in range(repeats):
                for budget, into in ((url, shared), (None, alone)):
                    sim.faults.reset()
                    sim.faults.update(rate_limit=RPS)
                    time.sleep(1.0)  # the gateway's bucket full, as for runs that start
                    into.append(runs_at_once(sim, budget, root / f"{i}-{bool(budget)}"))

    def median(runs: Sequence[RunsAtOnce], name: str) -> float:
        return round(statistics.median(getattr(r, name) for r in runs), 3)

    names = ("seconds", "budget_s", "ratio", "start_up_s", "requests_s", "requests_ratio")
    return {
        "rps": RPS,
        "runs_at_once": len(DAYS),
        "repeats": repeats,
        "shared": {
            "median": {n: median(shared, n) for n in names},
            "throttled_share": max(r.throttled / r.requests for r in shared),
            "tail_s": median(shared, "tail_s"),
            "each": [asdict(r) for r in shared],
        },
        "alone": {
            "median": {n: median(alone, n) for n in names},
            "throttled_share": min(r.throttled / r.requests for r in alone),
            "each": [asdict(r) for r in alone],
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shared_rate")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "shared-rate.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the runs without the budget retry their 429s
    result = measure(args.repeats)
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for mode in ("shared", "alone"):
        m = result[mode]
        assert isinstance(m, dict)
        print(f"{mode}: {json.dumps(m['median'])}, 429 share {m['throttled_share']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
