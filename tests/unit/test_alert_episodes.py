"""Alert episodes on hand-built counts: an alert stays open against the baseline frozen at its
onset, closes on the first day the key is back, and an incremental build gives the same
episodes as a full one.

Real parts: Parquet written by hand (``tests/support/failure_cells.py``), the real
build, the marts read back through DuckDB.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.failure_cells import (
    GAPS,
    QUIET,
    SHIFT,
    ZONE,
    Cell,
    day,
    persistent,
    shifts,
    write_cells,
)
from warehouse import build_warehouse, connect
from warehouse.episodes import signed_root_g


def episodes(path: str | Path) -> list[dict]:
    con = connect(path)
    try:
        cursor = con.execute("SELECT * FROM alert_episodes ORDER BY dimension, key, opened")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def test_a_persistent_shift_stays_open_with_its_since_until_the_key_is_back(
    tmp_path: Path,
) -> None:
    rows = shifts(tmp_path, persistent(SHIFT))
    zone = {d: rows[d, "zone", ZONE] for d in range(18) if d not in GAPS}
    # the 7-day baseline takes the shift in: by day 12 it is no longer twice the baseline
    assert zone[12]["failure_rate"] < 2 * zone[12]["baseline_rate"]
    # ... yet the episode stays open, since day 8, through the quiet day 13, to day 14
    for d in (8, 9, 10, 11, 12, 14):
        assert (zone[d]["alert"], zone[d]["since"]) == (True, day(8)), d
    # and closes on day 15, the first day back at 1%
    for d in (15, 16, 17):
        assert (zone[d]["alert"], zone[d]["since"]) == (False, None), d
    assert not any(zone[d]["alert"] for d in range(8))

    (episode,) = [e for e in episodes(tmp_path / "coc.duckdb") if e["key"] == ZONE]
    assert episode["dimension"] == "zone"
    assert (episode["opened"], episode["last_alerted"], episode["closed"]) == (
        day(8),
        day(14),
        day(15),
    )
    assert episode["days"] == 7
    assert (episode["instances"], episode["failed"]) == (6000, 600)
    assert episode["failure_rate"] == 0.1
    assert episode["baseline_rate"] == 0.01  # days 1-7, frozen
    assert episode["peak_score"] >= zone[8]["score"] > 5


def test_an_open_episode_has_no_closed_day_and_counts_days_to_the_newest(tmp_path: Path) -> None:
    rows = shifts(tmp_path, persistent(SHIFT, days=14))  # data ends on day 13 (ZONE quiet)
    assert rows[12, "zone", ZONE]["alert"] is True
    (episode,) = [e for e in episodes(tmp_path / "coc.duckdb") if e["key"] == ZONE]
    assert episode["closed"] is None
    assert episode["last_alerted"] == day(12)
    assert episode["days"] == 6  # days 8 to 13


def test_a_message_pattern_closes_on_the_first_day_with_runs_and_none_failing_with_it(
    tmp_path: Path,
) -> None:
    expired = "TLS handshake with 10.0.0.12:443 failed: certificate expired"
    cells = [*QUIET, *(Cell(d, "cn-east-3b", 1000, 40, message=expired) for d in (6, 7))]
    rows = shifts(tmp_path, cells)
    pattern = "TLS handshake with <ip>:<n> failed: certificate expired"
    assert rows[6, "message_pattern", pattern]["alert"] is True
    assert rows[7, "message_pattern", pattern]["since"] == day(6)
    (episode,) = [e for e in episodes(tmp_path / "coc.duckdb") if e["key"] == pattern]
    assert (episode["opened"], episode["last_alerted"], episode["closed"]) == (
        day(6),
        day(7),
        day(8),
    )


def test_the_columns_of_alert_episodes_are_the_contracts(tmp_path: Path) -> None:
    write_cells(tmp_path, QUIET)
    built = build_warehouse(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "coc.duckdb"))
    con = connect(built.duckdb_path)
    try:
        described = con.execute("DESCRIBE alert_episodes").fetchall()
    finally:
        con.close()
    assert [(name, kind) for name, kind, *_ in described] == [
        ("dimension", "VARCHAR"),
        ("key", "VARCHAR"),
        ("opened", "DATE"),
        ("last_alerted", "DATE"),
        ("closed", "DATE"),
        ("days", "BIGINT"),
        ("peak_score", "DOUBLE"),
        ("baseline_rate", "DOUBLE"),
        ("failure_rate", "DOUBLE"),
        ("instances", "BIGINT"),
        ("failed", "BIGINT"),
    ]


def test_the_frozen_score_is_the_marts_score_on_the_onset_day(tmp_path: Path) -> None:
    rows = shifts(tmp_path, persistent(SHIFT))
    onset = rows[8, "zone", ZONE]
    con = connect(tmp_path / "coc.duckdb")
    try:
        ((b, r, phi),) = con.execute(
            "SELECT _reference_failed, _reference_instances, _dispersion "
            "FROM mart_data.failure_shifts WHERE dt = ? AND dimension = 'zone' AND key = ?",
            [day(8), ZONE],
        ).fetchall()
    finally:
        con.close()
    assert (b, r) == (onset["baseline_failed"], onset["baseline_instances"])
    assert signed_root_g(onset["failed"], onset["instances"], b, r, phi) == pytest.approx(
        onset["score"]
    )


def _snapshot(path: str) -> dict[str, list[tuple]]:
    con = connect(path)
    try:
        return {
            m: con.execute(f"SELECT * FROM {m} ORDER BY ALL").fetchall()
            for m in ("failure_shifts", "alert_episodes")
        }
    finally:
        con.close()


def _rematerializer(tmp_path: Path, root: Path, path: str, shift: dict[int, int]):
    on_disk = dict(shift)

    def rematerialize(changed: int, failed: int) -> list[dict]:
        on_disk[changed] = failed
        write_cells(root, [c for c in persistent(on_disk, days=30) if c.day == changed])
        built = build_warehouse(warehouse=str(root), duckdb_path=path, changed_days=[day(changed)])
        assert not built.full
        full = build_warehouse(
            warehouse=str(root), duckdb_path=str(tmp_path / f"full-{changed}.duckdb"), rebuild=True
        )
        assert _snapshot(path) == _snapshot(full.duckdb_path)
        return [(e["opened"], e["closed"]) for e in episodes(path) if e["key"] == ZONE]

    return rematerialize


@pytest.mark.slow
def test_a_changed_day_inside_an_episode_gives_the_episodes_of_a_full_rebuild(
    tmp_path: Path,
) -> None:
    root, path = tmp_path / "wh", str(tmp_path / "coc.duckdb")
    write_cells(root, persistent(SHIFT, days=30))
    build_warehouse(warehouse=str(root), duckdb_path=path)
    assert [(e["opened"], e["closed"]) for e in episodes(path) if e["key"] == ZONE] == [
        (day(8), day(15))
    ]
    rematerialize = _rematerializer(tmp_path, root, path, SHIFT)
    # day 11 back at 1%: the episode opened on day 8 closes there
    assert rematerialize(11, 10)[0] == (day(8), day(11))
    # and at 10% again: it runs to day 15 as before
    assert rematerialize(11, 100) == [(day(8), day(15))]
    # a new onset later on opens an episode of its own
    assert rematerialize(22, 100) == [(day(8), day(15)), (day(22), day(23))]


@pytest.mark.slow
def test_an_episode_open_for_longer_than_the_reach_keeps_its_since_after_a_change(
    tmp_path: Path,
) -> None:
    root, path = tmp_path / "wh", str(tmp_path / "coc.duckdb")
    shift = {d: 100 for d in range(8, 30)}
    write_cells(root, persistent(shift, days=30))
    build_warehouse(warehouse=str(root), duckdb_path=path)
    rematerialize = _rematerializer(tmp_path, root, path, shift)
    # day 26, 18 days after the onset (past the 14 days a change reaches back), a bit lower
    assert rematerialize(26, 80) == [(day(8), None)]
    rows = shifts_of(path, 29)
    assert (rows["alert"], rows["since"]) == (True, day(8))


def shifts_of(path: str, n: int) -> dict:
    con = connect(path)
    try:
        cursor = con.execute(
            "SELECT * FROM failure_shifts WHERE dt = ? AND dimension = 'zone' AND key = ?",
            [day(n), ZONE],
        )
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchall()[0], strict=True))
    finally:
        con.close()
