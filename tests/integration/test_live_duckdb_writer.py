"""A DuckDB writer held on ``coc.duckdb`` across a rebuild: the run and the rebuild name its
process and refuse before fetching, the swap itself refuses one that came after the checks,
and the file stays readable with the writer's tables."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from coc_simulator.server import SimulatorServer
from tests.support.ingest_runs import (
    AK,
    COC_ETL,
    SK,
    SMALL_DAYS,
    ingest,
    ingest_env,
    one_line_error,
    run,
)
from warehouse.publish import WarehouseBusyError, publish, stamp_ours

pytestmark = pytest.mark.simulator(SMALL_DAYS, ak=AK, sk=SK)


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
    env = ingest_env(sim, warehouse)
    assert ingest(env, "2026-11-18").returncode == 0
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
        done = ingest(env, "2026-11-19")
        one_line_error(done, 2, f"process {writer.pid}", "ATTACH", "read-only")
        assert sim.stats.total == 0
        rebuilt = run([COC_ETL, "build-warehouse"], env)
        # checked before the build as before a run: exit 2, as the README's table says
        one_line_error(rebuilt, 2, f"process {writer.pid}")
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.wait(timeout=60) == 0
    finally:
        writer.kill()
        writer.wait()
    report = run([COC_ETL, "report", "--days", "3"], env)  # readable, nothing lost
    assert report.returncode == 0, report.stderr
    con = duckdb.connect(str(target), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert {"analyst_notes", "analyst_more"} <= tables
    con.close()
    assert ingest(env, "2026-11-19").returncode == 0  # once the writer is gone
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
