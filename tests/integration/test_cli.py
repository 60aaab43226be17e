"""The contract's commands, run as a user runs them: subprocesses against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import httpx
import pytest

from coc_etl.demo import materialize_command
from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from tests.support.cli_env import cli_env

AK = "CLITESTAK"
SK = "cli-test-secret-key-0123456789abcdef"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BIN = Path(sys.executable).parent


# small days: these tests are about the commands, not volume
pytestmark = pytest.mark.simulator(
    SimConfig(seed=3, days=4, now=NOW, tickets_per_day=(6, 8), max_batch_size=60), ak=AK, sk=SK
)


def _env(sim: SimulatorServer, warehouse: Path, **extra: str) -> dict[str, str]:
    return cli_env(sim, warehouse, ak=AK, sk=SK, **extra)


def _materialize(*selection: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The contract's command: ``dagster asset materialize -m pipelines.definitions ...``."""
    return _run(materialize_command(*selection), env)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=240, cwd=Path(__file__).parents[2]
    )


@pytest.mark.slow
def test_dagster_materializes_a_partition_range(sim: SimulatorServer, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    done = _materialize("--partition-range", "2026-11-18...2026-11-19", env=_env(sim, warehouse))
    assert done.returncode == 0, done.stderr[-3000:]
    assert SK not in done.stdout + done.stderr
    con = duckdb.connect(str(warehouse / "coc.duckdb"), read_only=True)
    days = con.execute("SELECT DISTINCT dt FROM execution_instances ORDER BY dt").fetchall()
    assert days == [(date(2026, 11, 18),), (date(2026, 11, 19),)]
    assert con.execute("SELECT count(*) FROM failure_rates_daily").fetchone()[0] > 0


@pytest.mark.slow
def test_a_missing_endpoint_is_a_clear_error(sim: SimulatorServer, tmp_path: Path) -> None:
    env = _env(sim, tmp_path / "wh")
    del env["COC_ENDPOINT"]
    done = _materialize("--partition", "2026-11-18", env=env)
    assert done.returncode != 0
    assert "COC_ENDPOINT is not set" in done.stdout + done.stderr
    assert SK not in done.stdout + done.stderr
    assert not (tmp_path / "wh" / "execution_instances").exists()


def _coc_etl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run([str(BIN / "coc-etl"), *args], env)


def _parquet(warehouse: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in warehouse.glob("*/dt=*/*.parquet")}


def test_coc_etl_ingest_then_report_then_update_and_repair(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    """A user's first commands on a new warehouse: ingest a day and read the report; ingest
    the next day (an incremental update of coc.duckdb); update with nothing changed; repair."""
    env = _env(sim, tmp_path / "wh")
    first = _coc_etl("ingest", "2026-11-18", env=env)
    assert first.returncode == 0, first.stderr
    assert "2026-11-18:" in first.stdout and "instances" in first.stdout
    assert "(full rebuild: no previous file)" in first.stdout, first.stderr
    report = _coc_etl("report", "--days", "3", "--by", "zone", env=env)
    assert report.returncode == 0, report.stderr
    assert "Failure rate by zone" in report.stdout and "total" in report.stdout
    second = _coc_etl("ingest", "2026-11-19", env=env)
    assert "(incremental: days 2026-11-19)" in second.stdout, second.stderr
    unchanged = _coc_etl("warehouse", env=env)
    assert unchanged.returncode == 0, unchanged.stderr
    assert "(incremental: days none)" in unchanged.stdout
    repair = _coc_etl("warehouse", "--rebuild", env=env)
    assert repair.returncode == 0, repair.stderr
    assert "(full rebuild: asked)" in repair.stdout


def test_coc_etl_fails_cleanly_on_a_forbidden_ticket(sim: SimulatorServer, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    env = _env(sim, warehouse)
    assert _coc_etl("ingest", "2026-11-18", env=env).returncode == 0
    before = _parquet(warehouse)
    start, end = sim.dataset.day_window("2026-11-18")
    victim = sim.dataset.tickets_in_window(start, end, now=NOW)[1].execute_uuid
    sim.faults.update(forced={victim: 403})
    try:
        done = _coc_etl("ingest", "2026-11-18", env=env)
    finally:
        sim.faults.reset()
    assert done.returncode == 3
    assert f"ticket={victim}" in done.stderr and "403" in done.stderr
    assert "Traceback" not in done.stderr
    assert SK not in done.stdout + done.stderr
    assert before and _parquet(warehouse) == before


def test_coc_etl_refuses_plain_http_to_a_remote_host(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COC_")}
    env.update(
        COC_ENDPOINT="http://coc.example.com", COC_TOKEN="t0ken-secret", COC_WAREHOUSE=str(tmp_path)
    )
    done = _run([str(BIN / "coc-etl"), "ingest", "2026-11-18"], env)
    assert done.returncode == 2
    assert "http://" in done.stderr and "t0ken-secret" not in done.stderr


def test_coc_etl_simulator_serves_with_the_simulators_options(tmp_path: Path) -> None:
    """``coc-etl simulator`` hands its options to coc_simulator (imported only then)."""
    command = [str(BIN / "coc-etl"), "simulator", "--port", "0", "--days", "2"]
    command += ["--now", NOW.isoformat(), "--token", "sim-t0ken-secret"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    ) as process:
        try:
            assert process.stdout is not None
            ready = process.stdout.readline()
            assert ready.startswith("COC simulator listening on http://127.0.0.1:"), ready
            url = ready.split()[-1]
            orders = f"{url}/v1/job/script/orders"
            assert httpx.get(orders).status_code == 401
            answer = httpx.get(orders, headers={"X-Auth-Token": "sim-t0ken-secret"})
            assert answer.status_code == 200 and answer.json()["data"]["total"] > 0
        finally:
            process.terminate()
        assert process.wait(timeout=30) == 0
        assert process.stderr is not None
        logged = process.stderr.read()
    assert "auth X-Auth-Token" in logged and "sim-t0ken-secret" not in logged


def test_coc_etl_rejects_options_it_does_not_know(tmp_path: Path) -> None:
    done = _run([str(BIN / "coc-etl"), "report", "--bogus"], {**os.environ})
    assert done.returncode == 2 and "unrecognized arguments: --bogus" in done.stderr


LOADED = """
import json, sys
from coc_etl.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps([code, sorted({m.split(".")[0] for m in sys.modules})]))
"""
HEAVY = {"dagster", "pyarrow", "duckdb", "httpx", "aiohttp", "numpy", "pandas", "coc_simulator"}


@pytest.mark.parametrize(
    ("args", "code", "not_loaded"),
    [
        (["--help"], 0, HEAVY | {"asyncio"}),
        (["ingest", "--help"], 0, HEAVY | {"asyncio"}),
        (["ingest", "2026-11-18"], 2, HEAVY),  # COC_CONCURRENCY refused
        (["report", "--days", "0"], 2, HEAVY | {"asyncio"}),
    ],
)
def test_help_and_refused_settings_load_no_heavy_module(
    tmp_path: Path, args: list[str], code: int, not_loaded: set[str]
) -> None:
    """``coc-etl --help`` and a run refused for its settings answer at once: they load none
    of what a run needs (the client, Arrow, DuckDB, Dagster)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COC_")}
    env.update(
        COC_ENDPOINT="http://127.0.0.1:9",
        COC_TOKEN="t0ken-secret",
        COC_WAREHOUSE=str(tmp_path / "wh"),
        COC_CONCURRENCY="1000000",
    )
    done = _run([sys.executable, "-c", LOADED, *args], env)
    assert done.returncode == 0, done.stderr
    exit_code, modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert exit_code == code, done.stderr
    assert not_loaded.isdisjoint(modules), sorted(not_loaded.intersection(modules))
    if code == 2 and args[0] == "ingest":
        assert "COC_CONCURRENCY" in done.stderr
