"""What a user reads: the retry budget named in the exit message, an interrupted range naming
the days it published, report arguments checked in one line, ``--help`` naming the
variables, exit codes and simulator options, an honest progress total."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import duckdb
import pytest

from coc_simulator.server import SimulatorServer
from pipelines.extract.walk import WalkStats, _listed
from tests.support.ingest_runs import (
    AK,
    COC_ETL,
    NOW,
    SK,
    SMALL_DAYS,
    ingest,
    ingest_env,
    one_line_error,
    run,
)

pytestmark = pytest.mark.simulator(SMALL_DAYS, ak=AK, sk=SK)


def test_the_retry_budget_is_a_setting_the_exit_message_names(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    env = ingest_env(sim, warehouse, COC_MAX_ATTEMPTS="1")
    sim.faults.update(error_rate=0.5)
    done = ingest(env, "2026-11-18")
    err = one_line_error(done, 3, "gave up after 1 attempts", "COC_MAX_ATTEMPTS", "now 1")
    assert "COC_RETRY_BUDGET_S" in err
    assert not list(warehouse.glob("*/dt=*"))


def test_an_interrupted_range_names_the_published_days_and_builds_for_them(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    env = ingest_env(sim, warehouse)
    start, end = sim.dataset.day_window("2026-11-19")
    victim = sim.dataset.tickets_in_window(start, end, now=NOW)[0].execute_uuid
    sim.faults.update(forced={victim: 403})
    done = ingest(env, "2026-11-17", "--to", "2026-11-19")
    err = one_line_error(done, 3, f"ticket={victim}", "403")
    assert "published before it stopped: 2026-11-17, 2026-11-18" in err
    assert "coc.duckdb rebuilt over them" in err and "unchanged" not in err
    con = duckdb.connect(str(warehouse / "coc.duckdb"), read_only=True)
    days = con.execute("SELECT DISTINCT dt FROM failure_rates_daily ORDER BY 1").fetchall()
    assert days == [(date(2026, 11, 17),), (date(2026, 11, 18),)]


def test_report_arguments_are_checked_in_one_line(sim: SimulatorServer, tmp_path: Path) -> None:
    env = ingest_env(sim, tmp_path / "wh")
    days0 = run([COC_ETL, "report", "--days", "0"], env)
    assert days0.returncode == 2 and "--days" in days0.stderr and "Traceback" not in days0.stderr
    text = tmp_path / "notes.duckdb"
    text.write_text("just some notes, not a database\n")
    one_line_error(
        run([COC_ETL, "report", "--duckdb", str(text)], env), 2, "--duckdb", "not a DuckDB"
    )
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    one_line_error(
        run([COC_ETL, "report", "--duckdb", str(other)], env), 2, "coc-etl did not build"
    )


def test_help_names_the_variables_exit_codes_and_every_simulator_option() -> None:
    ingest = run([COC_ETL, "ingest", "--help"], dict(os.environ)).stdout
    for needle in (
        "COC_ENDPOINT",
        "COC_WAREHOUSE",
        "COC_CONCURRENCY",
        "1..256",
        "COC_MAX_ATTEMPTS",
    ):
        assert needle in ingest
    assert "exit codes" in ingest and "143 terminated" in ingest
    report = run([COC_ETL, "report", "--help"], dict(os.environ)).stdout
    assert "the key of each line" in report
    simulator = run([COC_ETL, "simulator", "--help"], dict(os.environ)).stdout
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
