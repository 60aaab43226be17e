"""``kill -9`` a process rewriting a published day: the day stays as it was, for pyarrow and DuckDB.

The writer runs in a real subprocess (``parquet_crash_writer.py``) that publishes version 1,
then starts version 2 and is killed with SIGKILL at a chosen moment: while streaming row
groups, between two tables' swaps, and between the fallback swap's two renames. The killed
run's lock goes with it: the next writer takes the day at once and removes the debris.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines import publish
from pipelines.parquet import DayWriter
from pipelines.schemas import TABLES

HELPER = Path(__file__).with_name("parquet_crash_writer.py")
REPO = HELPER.parents[2]
DAY = dt.date(2026, 11, 25)


def published(root: Path) -> dict[str, bytes]:
    """Every file readers can see (outside ``_staging``), by path relative to the root."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != publish.STAGING
    }


def staged_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / publish.STAGING).rglob("*") if p.is_file())


def rows_via_pyarrow(root: Path, table: str) -> list[tuple]:
    data = pq.read_table(root / table / f"dt={DAY}")
    return sorted(zip(*(data.column(c).to_pylist() for c in data.column_names[:3]), strict=True))


def rows_via_duckdb(root: Path, table: str) -> list[tuple]:
    """The first three columns and the typed ``dt``, as a reader globbing every day sees them."""
    columns = ", ".join(TABLES[table].names[:3])
    glob = f"{root}/{table}/dt=*/*.parquet"
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT {columns}, dt FROM read_parquet('{glob}', hive_partitioning=true) ORDER BY ALL"
        ).fetchall()


def wait_for(marker: Path, proc: subprocess.Popen, deadline: float) -> None:
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"writer exited {proc.returncode}: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"writer never reached {marker.name}")
        time.sleep(0.005)


def killed_writer(tmp_path: Path, mode: str) -> tuple[Path, dict[str, bytes]]:
    """Run the helper until its ``stop`` marker, SIGKILL it; returns the root and version 1."""
    root, markers = tmp_path / "wh", tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), str(root), DAY.isoformat(), str(markers), mode],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        wait_for(markers / "v1", proc, deadline)
        version1 = published(root)
        (markers / "go").touch()
        wait_for(markers / "stop", proc, deadline)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    return root, version1


def assert_version_1(root: Path, version1: dict[str, bytes]) -> None:
    assert published(root) == version1  # byte for byte, and no other file
    rows = rows_via_pyarrow(root, "execution_instances")
    assert len(rows) == 300 and {uuid for uuid, _, _ in rows} == {"v1-0", "v1-1", "v1-2"}
    assert rows_via_duckdb(root, "execution_instances") == [(*r, DAY) for r in rows]


def assert_next_writer_cleans_up(root: Path) -> None:
    before = published(root)
    with DayWriter(root=str(root), day=DAY, lock_timeout_s=0):  # the dead run's lock is free
        assert [p.name for p in staged_files(root)] == [".lock"]  # ours; the debris is gone
    assert published(root) == before
    assert not (root / publish.STAGING / f"dt={DAY}").exists()


def test_killed_while_writing_row_groups(tmp_path: Path) -> None:
    root, version1 = killed_writer(tmp_path, "mid-write")
    lock, staged = staged_files(root)  # the dead run's lock file, its half-written file
    assert lock.name == ".lock" and lock.read_text().startswith('{"run_id": ')
    assert staged.name.endswith(".parquet") and staged.stat().st_size > 0
    assert_version_1(root, version1)
    assert_next_writer_cleans_up(root)
    assert_version_1(root, version1)


@pytest.mark.skipif(not publish.HAS_EXCHANGE, reason="renameat2 is not available")
def test_killed_between_two_tables_swaps(tmp_path: Path) -> None:
    root, version1 = killed_writer(tmp_path, "mid-exchange")
    first, *rest = TABLES
    # each table whole: the first already at version 2, the others still at version 1
    assert {u for u, *_ in rows_via_duckdb(root, first)} == {"v2-0", "v2-1"}
    for table in rest:
        assert {u for u, *_ in rows_via_duckdb(root, table)} == {"v1-0", "v1-1", "v1-2"}
        assert {k: v for k, v in published(root).items() if k.startswith(table)} == {
            k: v for k, v in version1.items() if k.startswith(table)
        }
    assert len(staged_files(root)) > 1  # the lock, the old first table and the staged others
    assert_next_writer_cleans_up(root)


def test_killed_between_the_fallback_renames(tmp_path: Path) -> None:
    root, version1 = killed_writer(tmp_path, "mid-fallback")
    assert not (root / "execution_instances" / f"dt={DAY}").exists()  # the fallback's window
    with DayWriter(root=str(root), day=DAY, lock_timeout_s=0):  # puts version 1 back, cleans up
        assert [p.name for p in staged_files(root)] == [".lock"]
    assert_version_1(root, version1)
