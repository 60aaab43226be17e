"""``coc.duckdb`` opens read-only in DuckDB 1.1, 1.4 (LTS) and our own release, and through
SQLAlchemy with duckdb-engine (Superset's connector), from another working directory, and
every view and mart answers the same rows in each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.bi.conftest import BiWarehouse
from tests.compat.envs import compat_python

DUMP = Path(__file__).parents[1] / "compat" / "dump_views.py"
MARTS = {"failure_messages", "failure_rates_daily", "host_failures", "ticket_outcomes"}

pytestmark = pytest.mark.slow


def _dump(python: Path | str, duckdb_path: Path, cwd: Path, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), str(DUMP), str(duckdb_path), *extra],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def own(bi_warehouse: BiWarehouse, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    return _dump(sys.executable, bi_warehouse.duckdb_path, elsewhere)


def test_own_release_answers_every_view(own: dict[str, Any], bi_warehouse: BiWarehouse) -> None:
    assert own["duckdb"] == duckdb.__version__
    assert set(own["views"]) == set(bi_warehouse.views)
    assert set(own["views"]) >= MARTS
    # schema_drift is empty where the API sent what it documents
    assert all(
        own["views"][name]["rows"] > 0 for name in bi_warehouse.views if name != "schema_drift"
    )


@pytest.mark.parametrize(
    ("env", "release", "extra"),
    [
        ("duckdb-1.1", "1.1.", ()),
        ("duckdb-1.4", "1.4.", ()),
        ("duckdb-1.4", "1.4.", ("--engine",)),
    ],
    ids=["duckdb-1.1", "duckdb-1.4", "sqlalchemy-duckdb-engine-1.4"],
)
def test_older_releases_answer_the_same_rows(
    env: str,
    release: str,
    extra: tuple[str, ...],
    own: dict[str, Any],
    bi_warehouse: BiWarehouse,
    tmp_path: Path,
) -> None:
    other = _dump(compat_python(env), bi_warehouse.duckdb_path, tmp_path, *extra)
    assert other["duckdb"].startswith(release)
    assert other["views"] == own["views"]


def test_the_file_is_written_in_the_oldest_supported_format(bi_warehouse: BiWarehouse) -> None:
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{bi_warehouse.duckdb_path}' AS wh (READ_ONLY)")
        row = con.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'wh'"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    assert str(row[0]).startswith("v1.0.0")
