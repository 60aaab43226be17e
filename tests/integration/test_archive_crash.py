"""``kill -9`` a run re-ingesting a day while its raw archive and its tables are published
(one Delta commit per table: the archive first, ``order_batches``, the marker, last).

The run is a real ingestion in a subprocess (``archive_crash_writer.py``) against an
in-process simulator whose API has drifted for the second run, killed with SIGKILL while it
writes the archive's file, just after the archive's commit, and just before the marker's.
What readers see through the Delta log and ``coc.duckdb``:

- ``coc.duckdb`` built after the kill shows exactly what it showed before, every view
  (the tables, ``schema_drift``, the marts): the build pins every table of a day to the run
  the marker names, so a run killed before its marker is not seen;
- each table's log names either the previous run's day, byte for byte, or (committed before
  the kill) the dead run's whole day, never a part of one; the archive named is whole and
  replays;
- the dead run's uncommitted files are named by no log and the vacuum removes them;
- a replay of the archive the log names publishes the day again, whole, from one source.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assets.checks import read_day
from pipelines.lake.tables import Lake
from pipelines.replay import replay_days
from pipelines.settings import WarehouseSettings
from pipelines.transform.schemas import DAY_TABLES
from tests.support.views import view_rows
from warehouse.build import build_warehouse, connect

HELPER = Path(__file__).with_name("archive_crash_writer.py")
REPO = HELPER.parents[2]
DAY = dt.date(2026, 11, 24)
CONTRACT = ("execution_instances", "script_orders", "order_batches")
#: the tables the dead run committed before it was killed, per mode
COMMITTED = {
    "mid-archive-write": (),
    "after-archive-commit": ("raw_responses",),
    "before-marker": ("raw_responses", "execution_instances", "script_orders", "schema_drift"),
}


def logged(root: Path) -> dict[str, dict[str, bytes]]:
    """Every table's files of DAY that its newest Delta version names, with their bytes."""
    lake = Lake(str(root))
    return {
        table: {
            path: (root / table / path).read_bytes()
            for path in lake.snapshot(table).files.get(DAY, ())
        }
        for table in DAY_TABLES
    }


def on_disk(root: Path) -> set[str]:
    return {
        str(p.relative_to(root)) for table in DAY_TABLES for p in (root / table).rglob("*.parquet")
    }


def every_view(duckdb_path: str) -> dict[str, list]:
    con = connect(duckdb_path)
    try:
        return view_rows(con)
    finally:
        con.close()


def build(root: Path, duckdb_path: Path, retention_h: float | None = None) -> dict[str, list]:
    built = build_warehouse(
        warehouse=str(root), duckdb_path=str(duckdb_path), vacuum_retention_h=retention_h
    )
    return every_view(built.duckdb_path)


def wait_for(marker: Path, proc: subprocess.Popen, deadline: float) -> None:
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"writer exited {proc.returncode}: {proc.stderr.read().decode()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"writer never reached {marker.name}")
        time.sleep(0.01)


def killed_run(tmp_path: Path, mode: str) -> tuple[Path, dict[str, dict[str, bytes]], dict]:
    """The warehouse after the kill, each table's logged day before it, and every view of
    ``coc.duckdb`` built before it."""
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
        version1 = logged(root)
        views1 = build(root, tmp_path / "before.duckdb")
        (markers / "go").touch()
        wait_for(markers / "stop", proc, deadline)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    return root, version1, views1


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(COMMITTED))
def test_a_run_killed_publishing_the_archive_and_tables_is_never_seen_half(
    tmp_path: Path, mode: str
) -> None:
    root, version1, views1 = killed_run(tmp_path, mode)
    assert all(version1[table] for table in DAY_TABLES)  # the first run published all five
    assert views1["schema_drift"] == []  # the first run's API was as documented

    # coc.duckdb: exactly as before, every view, whatever the dead run committed
    assert build(root, tmp_path / "after.duckdb") == views1

    # each table's log: the previous day byte for byte, or the dead run's whole day
    now = logged(root)
    for table in DAY_TABLES:
        if table in COMMITTED[mode]:
            assert now[table] and now[table].keys().isdisjoint(version1[table]), table
        else:
            assert now[table] == version1[table], table
    wh = WarehouseSettings(warehouse=str(root), duckdb_path=str(tmp_path / "coc.duckdb"))
    if "raw_responses" not in COMMITTED[mode]:
        # the archive the log names is the previous run's: a replay gives its tables again
        before = {t: _rows(root, t) for t in CONTRACT}
        replay_days(wh, [DAY])
        assert {t: _rows(root, t) for t in CONTRACT} == before
        assert build(root, tmp_path / "replayed.duckdb") == views1
    else:
        # the dead run's archive, committed whole: its replay publishes the drifted day whole
        (result,) = replay_days(wh, [DAY])
        assert result.replayed and result.drift  # the second run's API had drifted
        replayed = build(root, tmp_path / "replayed.duckdb")
        assert replayed["schema_drift"] and replayed != views1
        assert {t: _rows(root, t) for t in CONTRACT} != {t: [] for t in CONTRACT}

    # the dead run's uncommitted files: named by no log, removed by the vacuum
    named = {f"{t}/{p}" for t, files in logged(root).items() for p in files}
    assert on_disk(root) - named  # the debris is there (and superseded days)
    build(root, tmp_path / "vacuumed.duckdb", retention_h=0)
    build(root, tmp_path / "vacuumed.duckdb", retention_h=0)  # the file before named older
    assert on_disk(root) == named


def _rows(root: Path, table: str) -> list[str]:
    data = read_day(str(root), table, DAY.isoformat(), None)
    return sorted(repr(tuple(row.values())) for row in data.to_pylist())
