"""A warehouse build that fails after the day is published (a broken file, a full disk)
exits 4 naming the day and the stale marts, and leaves no half-built DuckDB file; the next
build removes the debris of dead builds only."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from coc_simulator.server import SimulatorServer
from tests.support.ingest_runs import (
    AK,
    COC_ETL,
    SK,
    SMALL_DAYS,
    committed,
    exec_after,
    ingest,
    ingest_env,
    one_line_error,
    run,
)
from tests.support.lake import commit_file

pytestmark = pytest.mark.simulator(SMALL_DAYS, ak=AK, sk=SK)


def test_a_build_failure_after_publishing_exits_4_naming_the_days_and_stale_marts(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    env = ingest_env(sim, warehouse)
    assert ingest(env, "2026-11-18").returncode == 0
    broken = warehouse / "execution_instances" / "dt=2026-11-18" / "part-zz-broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")  # another day's file the build must read
    commit_file(warehouse, "execution_instances", date(2026, 11, 18), broken)
    done = ingest(env, "2026-11-19")
    one_line_error(done, 4, "published 2026-11-19", "marts are stale", "build-warehouse")
    assert list((warehouse / "execution_instances" / "dt=2026-11-19").glob("*.parquet"))


def test_a_full_disk_during_the_build_exits_4_and_leaves_no_build_file(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    measured = tmp_path / "measured"
    assert ingest(ingest_env(sim, measured), "2026-11-19").returncode == 0
    largest_parquet = max(p.stat().st_size for p in measured.glob("*/dt=*/*.parquet"))
    limit = int(largest_parquet * 1.3)
    assert (measured / "coc.duckdb").stat().st_size > limit, "the day is too small for this test"
    warehouse = tmp_path / "wh"
    # a disk that fills up once a file passes ``limit`` bytes
    prelude = f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))"
    done = run(exec_after(prelude, [COC_ETL, "ingest", "2026-11-19"]), ingest_env(sim, warehouse))
    one_line_error(done, 4, "published 2026-11-19", "File too large", "marts are stale")
    assert committed(warehouse), "the day's Parquet is published"
    assert not list(warehouse.glob("coc.duckdb*")), "no half-built DuckDB file left"


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
    env = ingest_env(sim, warehouse)
    assert ingest(env, "2026-11-18").returncode == 0
    target = warehouse / "coc.duckdb"
    for _ in range(3):
        subprocess.run([sys.executable, "-c", DEAD_BUILD, str(target)], check=False)
    debris = sorted(warehouse.glob("coc.duckdb.tmp-*"))
    assert len(debris) >= 3
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live_tmp = warehouse / f"coc.duckdb.tmp-{alive.pid}-7"
        live_tmp.write_bytes(b"a build still running")
        done = run([COC_ETL, "build-warehouse"], env)
        assert done.returncode == 0, done.stderr
        assert sorted(warehouse.glob("coc.duckdb.tmp-*")) == [live_tmp]
    finally:
        alive.kill()
        alive.wait()
