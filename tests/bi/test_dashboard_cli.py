"""``coc-etl dashboard`` as a command: where it finds the file, and its bad starts."""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.bi.conftest import BiWarehouse
from tests.bi.server import COC_ETL, clean_env, dashboard, free_port

pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COC_ETL), "dashboard", *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_variables_it_serves_the_demo_warehouse(
    bi_warehouse: BiWarehouse, tmp_path: Path
) -> None:
    """What ``make demo`` prints: run from the checkout, no COC_* variable set."""
    demo = tmp_path / ".demo" / "warehouse"
    demo.mkdir(parents=True)
    shutil.copy(bi_warehouse.duckdb_path, demo / "coc.duckdb")
    with (
        dashboard(None, cwd=tmp_path) as url,
        urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as answer,
    ):
        assert answer.status == 200
    log = next(tmp_path.glob("dashboard-*.log")).read_text()
    assert f"dashboard over {demo / 'coc.duckdb'} (read-only) at {url}" in log


def test_a_missing_file_names_it_and_the_command_that_builds_it(tmp_path: Path) -> None:
    done = run([], tmp_path)
    assert done.returncode == 2
    expected = f"no DuckDB file at {tmp_path / '.demo' / 'warehouse' / 'coc.duckdb'}"
    assert expected in done.stderr and "make demo" in done.stderr
    done = run([], tmp_path, COC_WAREHOUSE=str(tmp_path / "wh"))
    assert done.returncode == 2 and str(tmp_path / "wh" / "coc.duckdb") in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    corrupt = tmp_path / "coc.duckdb"
    corrupt.write_bytes(b"\0garbage" * 1000)
    done = run(["--duckdb", str(corrupt)], tmp_path)
    assert done.returncode == 2
    assert f"{corrupt} is not a coc.duckdb: it is not a DuckDB database" in done.stderr
    # the advice leads to the warehouse's own file, never to building over this one
    assert "point --duckdb or COC_DUCKDB at the coc.duckdb" in done.stderr
    assert "build-warehouse" not in done.stderr and "make demo" not in done.stderr
    assert "Traceback" not in done.stderr
    assert corrupt.read_bytes() == b"\0garbage" * 1000
    assert [p.name for p in tmp_path.iterdir()] == ["coc.duckdb"]


def test_a_port_in_use_is_refused(bi_warehouse: BiWarehouse, tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = run(["--duckdb", str(bi_warehouse.duckdb_path), "--port", str(port)], tmp_path)
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "Traceback" not in done.stderr
