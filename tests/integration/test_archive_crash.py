"""``kill -9`` a run re-ingesting a day while its raw archive is being published: the previous
archive and the previous tables stay, byte for byte, and a replay of that archive gives those
tables again.

The run is a real ingestion in a subprocess (``archive_crash_writer.py``) against an
in-process simulator, killed with SIGKILL while it writes the archive's staged file, and
between the two renames of the archive's swap. The next writer of the day puts back what the
dead run moved away and removes its debris.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines import publish
from pipelines.parquet import DayWriter
from pipelines.replay import replay_days
from pipelines.schemas import DAY_TABLES
from pipelines.settings import WarehouseSettings

HELPER = Path(__file__).with_name("archive_crash_writer.py")
REPO = HELPER.parents[2]
DAY = dt.date(2026, 11, 24)


def published(root: Path) -> dict[str, bytes]:
    """Every Parquet file readers can see (outside ``_staging``), by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*.parquet"))
        if p.relative_to(root).parts[0] != publish.STAGING
    }


def wait_for(marker: Path, proc: subprocess.Popen, deadline: float) -> None:
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"writer exited {proc.returncode}: {proc.stderr.read().decode()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"writer never reached {marker.name}")
        time.sleep(0.01)


def killed_run(tmp_path: Path, mode: str) -> tuple[Path, dict[str, bytes]]:
    root, markers = tmp_path / "wh", tmp_path / "markers"
    markers.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), str(root), DAY.isoformat(), str(markers), mode],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        wait_for(markers / "v1", proc, deadline)
        version1 = published(root)
        (markers / "go").touch()
        wait_for(markers / "stop", proc, deadline)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    return root, version1


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["mid-archive-write", "mid-archive-swap"])
def test_a_run_killed_publishing_the_archive_leaves_the_previous_day_whole(
    tmp_path: Path, mode: str
) -> None:
    root, version1 = killed_run(tmp_path, mode)
    assert {p.split("/")[0] for p in version1} == set(DAY_TABLES)
    if mode == "mid-archive-swap":  # the fallback's window: the archive is away
        assert not (root / "raw_responses" / f"dt={DAY}").exists()
    with DayWriter(root=str(root), day=DAY, tables=DAY_TABLES, lock_timeout_s=0):
        pass  # the dead run's lock is free; its debris goes, the moved archive comes back
    assert published(root) == version1
    assert not (root / publish.STAGING / f"dt={DAY}").exists()
    # and the archive still derives exactly those tables
    tables = ("execution_instances", "script_orders", "order_batches")
    before = {table: _rows(root, table) for table in tables}
    wh = WarehouseSettings(warehouse=str(root), duckdb_path=str(tmp_path / "coc.duckdb"))
    replay_days(wh, [DAY])
    assert {table: _rows(root, table) for table in tables} == before


def _rows(root: Path, table: str) -> list[str]:
    data = pq.read_table(root / table / f"dt={DAY}")
    return sorted(repr(tuple(row.values())) for row in data.to_pylist())
