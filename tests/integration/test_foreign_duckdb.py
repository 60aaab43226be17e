"""The build replaces ``COC_DUCKDB`` only when it is a file the build wrote.

An analyst's own DuckDB database, a text file or one of the warehouse's Parquet files named
by ``COC_DUCKDB`` is refused by every build path (``coc-etl warehouse``, ``coc-etl ingest``,
the Dagster run): exit 2 (a failed run under Dagster) naming the file, which stays
byte-identical. Real processes: the simulator on loopback, the real CLI and ``dagster``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from coc_etl.demo import materialize_command
from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from tests.support.cli_env import cli_env
from tests.support.cli_run import COC_ETL, one_line_error, run
from warehouse.build import build_warehouse

AK = "FOREIGNAK"
SK = "foreign-secret-key-0123456789abcdef"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = "2026-11-18"


pytestmark = pytest.mark.simulator(
    SimConfig(seed=3, days=3, now=NOW, tickets_per_day=(2, 3), max_batch_size=30), ak=AK, sk=SK
)


@pytest.fixture(scope="module")
def warehouse(module_sim: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("foreign") / "wh"
    done = run([COC_ETL, "ingest", DAY], cli_env(module_sim, root, ak=AK, sk=SK))
    assert done.returncode == 0, done.stderr
    return root


def _analysts_database(folder: Path, warehouse: Path) -> Path:
    path = folder / "analysis.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE precious AS SELECT 42 AS answer")
    return path


def _text_file(folder: Path, warehouse: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("my notes, not a database\n")
    return path


def _warehouse_parquet(folder: Path, warehouse: Path) -> Path:
    return next((warehouse / "execution_instances").glob("dt=*/*.parquet"))


FOREIGN: dict[str, Callable[[Path, Path], Path]] = {
    "analysts-duckdb": _analysts_database,
    "text-file": _text_file,
    "warehouse-parquet": _warehouse_parquet,
}
REASONS = {
    "analysts-duckdb": "a DuckDB database that coc-etl did not build",
    "text-file": "it is not a DuckDB database",
    "warehouse-parquet": "it is a Parquet file, not a DuckDB database",
}


@pytest.mark.parametrize("kind", list(FOREIGN))
@pytest.mark.parametrize("rebuild", [False, True], ids=["warehouse", "warehouse-rebuild"])
def test_the_warehouse_command_refuses_a_foreign_file_and_leaves_it_byte_identical(
    sim: SimulatorServer, warehouse: Path, tmp_path: Path, kind: str, rebuild: bool
) -> None:
    foreign = FOREIGN[kind](tmp_path, warehouse)
    before = foreign.read_bytes()
    env = cli_env(sim, warehouse, ak=AK, sk=SK, COC_DUCKDB=str(foreign))

    done = run([COC_ETL, "warehouse", *(["--rebuild"] if rebuild else [])], env)

    one_line_error(done, 2, f"COC_DUCKDB='{foreign}'", REASONS[kind], "left", secrets=(SK,))
    assert foreign.read_bytes() == before
    assert not list(foreign.parent.glob(f"{foreign.name}.tmp-*"))
    if kind == "analysts-duckdb":
        with duckdb.connect(str(foreign), read_only=True) as con:
            assert con.execute("SELECT answer FROM precious").fetchone() == (42,)


def test_ingest_refuses_a_foreign_file_before_any_request(
    sim: SimulatorServer, warehouse: Path, tmp_path: Path
) -> None:
    foreign = _analysts_database(tmp_path, warehouse)
    before = foreign.read_bytes()
    sim.stats.reset()
    env = cli_env(sim, warehouse, ak=AK, sk=SK, COC_DUCKDB=str(foreign))

    done = run([COC_ETL, "ingest", DAY], env)

    one_line_error(done, 2, str(foreign), "coc-etl did not build", secrets=(SK,))
    assert sim.stats.total == 0 and foreign.read_bytes() == before


def test_a_file_the_build_wrote_is_replaced_and_a_missing_one_created(
    sim: SimulatorServer, warehouse: Path, tmp_path: Path
) -> None:
    ours = tmp_path / "ours.duckdb"
    env = cli_env(sim, warehouse, ak=AK, sk=SK, COC_DUCKDB=str(ours))
    assert run([COC_ETL, "warehouse"], env).returncode == 0  # missing: created
    first = ours.read_bytes()
    done = run([COC_ETL, "warehouse", "--rebuild"], env)
    assert done.returncode == 0, done.stderr
    assert ours.read_bytes() != first  # replaced by the new build
    with duckdb.connect(str(ours), read_only=True) as con:
        assert con.execute("SELECT product FROM mart_data.written_by").fetchone() == ("coc-etl",)


def test_a_file_built_before_the_mark_existed_is_still_the_builds(tmp_path: Path) -> None:
    """A coc.duckdb of an earlier release carries the build's state, not the mark."""
    old = tmp_path / "coc.duckdb"
    build_warehouse(warehouse=str(tmp_path / "wh"), duckdb_path=str(old))
    with duckdb.connect(str(old)) as con:
        con.execute("DROP TABLE mart_data.written_by")
    build_warehouse(warehouse=str(tmp_path / "wh"), duckdb_path=str(old), rebuild=True)
    with duckdb.connect(str(old), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM mart_data.written_by").fetchone() == (1,)


@pytest.mark.slow
def test_under_dagster_a_foreign_file_fails_the_run_and_stays_byte_identical(
    sim: SimulatorServer, warehouse: Path, tmp_path: Path
) -> None:
    foreign = _analysts_database(tmp_path, warehouse)
    before = foreign.read_bytes()
    env = cli_env(sim, warehouse, ak=AK, sk=SK, COC_DUCKDB=str(foreign))

    done = run(materialize_command("--partition", DAY), env)

    assert done.returncode != 0
    assert "coc-etl did not build" in done.stdout + done.stderr
    assert foreign.read_bytes() == before
