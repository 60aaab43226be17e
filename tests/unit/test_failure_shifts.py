"""failure_shifts on hand-built counts: the alert rule, the baseline window and ``since``.

Each test writes a few days of Parquet whose counts are chosen by hand (one ticket per
(day, zone, script version) cell, ``failed`` ABNORMAL instances and the rest FINISHED),
builds the real ``coc.duckdb`` and reads the mart back through DuckDB.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetCheckSeverity

from assets.warehouse import shift_check_result
from tests.support.failure_cells import DAY0, QUIET, Cell, shifts, steady, write_cells
from warehouse import (
    ShiftAlert,
    build_warehouse,
    connect,
    describe_alert,
    format_alerts,
    newest_alerts,
)

#: the contract's columns, in order, with the DuckDB types the mart gives them
COLUMNS = [
    ("dt", "DATE"),
    ("dimension", "VARCHAR"),
    ("key", "VARCHAR"),
    ("instances", "BIGINT"),
    ("failed", "BIGINT"),
    ("failure_rate", "DOUBLE"),
    ("baseline_instances", "BIGINT"),
    ("baseline_failed", "BIGINT"),
    ("baseline_rate", "DOUBLE"),
    ("score", "DOUBLE"),
    ("alert", "BOOLEAN"),
    ("since", "DATE"),
]


def test_columns_and_types_are_the_contracts(tmp_path: Path) -> None:
    write_cells(tmp_path, QUIET)
    built = build_warehouse(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "coc.duckdb"))
    con = connect(built.duckdb_path)
    try:
        described = con.execute("DESCRIBE failure_shifts").fetchall()
        dimensions = {
            d for (d,) in con.execute("SELECT DISTINCT dimension FROM failure_shifts").fetchall()
        }
    finally:
        con.close()
    assert [(name, kind) for name, kind, *_ in described] == COLUMNS
    expected = {"region", "zone", "application", "script", "script_version", "host"}
    assert dimensions == expected | {"message_pattern"}


def test_equal_rates_never_alert(tmp_path: Path) -> None:
    cells = QUIET + steady(range(9), "cn-east-3b", 3000, 90) + steady(range(9), "ap-1a", 50, 5)
    rows = shifts(tmp_path, cells)
    assert not any(r["alert"] for r in rows.values())
    zone = rows[8, "zone", "cn-east-3b"]
    assert (zone["baseline_instances"], zone["baseline_failed"]) == (7 * 3000, 7 * 90)
    assert zone["failure_rate"] == zone["baseline_rate"] == 0.03
    assert zone["score"] == 0.0
    assert rows[0, "zone", "cn-east-3b"]["score"] is None  # the first day has no reference


def test_three_times_the_rate_on_large_counts_alerts(tmp_path: Path) -> None:
    cells = QUIET + steady(range(8), "cn-east-3b", 3000, 60) + [Cell(8, "cn-east-3b", 3000, 180)]
    rows = shifts(tmp_path, cells)
    zone = rows[8, "zone", "cn-east-3b"]
    assert zone["alert"] is True
    assert zone["since"] == DAY0 + timedelta(days=8)
    assert (zone["instances"], zone["failed"]) == (3000, 180)
    assert (zone["baseline_instances"], zone["baseline_failed"]) == (21000, 420)  # days 1-7
    assert zone["score"] > 5
    assert rows[8, "region", "cn-east-3"]["alert"] is True
    assert rows[8, "zone", "cn-north-4a"]["alert"] is False
    assert not any(r["alert"] for (day, _, _), r in rows.items() if day < 8)


def test_three_times_the_rate_on_five_instances_does_not_alert(tmp_path: Path) -> None:
    cells = QUIET + steady(range(8), "cn-east-3b", 1000, 200) + [Cell(8, "cn-east-3b", 5, 3)]
    rows = shifts(tmp_path, cells)
    zone = rows[8, "zone", "cn-east-3b"]
    assert zone["failure_rate"] == pytest.approx(3 * zone["baseline_rate"])
    assert zone["score"] > 0
    assert zone["alert"] is False
    assert zone["since"] is None


def test_since_is_the_first_day_of_the_unbroken_run(tmp_path: Path) -> None:
    # 1% for days 0-3, 10% on days 4 and 5, 1% on day 6, 10% again on day 7
    rates = [10, 10, 10, 10, 100, 100, 10, 100]
    cells = QUIET + [Cell(day, "cn-east-3b", 1000, failed) for day, failed in enumerate(rates)]
    rows = shifts(tmp_path, cells)
    zone = {day: rows[day, "zone", "cn-east-3b"] for day in range(8)}
    assert [zone[d]["alert"] for d in range(8)] == [False] * 4 + [True, True, False, True]
    assert zone[4]["since"] == zone[5]["since"] == DAY0 + timedelta(days=4)
    assert zone[6]["since"] is None
    assert zone[7]["since"] == DAY0 + timedelta(days=7)


def test_a_new_key_alerts_against_its_dimension_when_its_numbers_are_strong(
    tmp_path: Path,
) -> None:
    old = steady(range(9), "cn-east-3b", 2000, 40, version="v1")
    new = [
        Cell(8, "cn-east-3b", 500, 150, version="v2"),
        Cell(8, "cn-east-3b", 4, 4, script="tiny", version="v9"),
    ]
    rows = shifts(tmp_path, QUIET + old + new)
    version = rows[8, "script_version", "deploy v2"]
    assert (version["baseline_instances"], version["baseline_failed"]) == (0, 0)
    assert version["baseline_rate"] is None
    assert version["alert"] is True
    assert version["since"] == DAY0 + timedelta(days=8)
    tiny = rows[8, "script_version", "tiny v9"]  # 4 of 4 failed: a handful, no alert
    assert tiny["score"] > 0
    assert tiny["alert"] is False
    assert rows[8, "script_version", "deploy v1"]["alert"] is False


def test_a_new_message_pattern_alerts_and_is_masked_like_failure_messages(
    tmp_path: Path,
) -> None:
    expired = "TLS handshake with 10.0.0.12:443 failed: certificate expired 3 days ago"
    cells = [*QUIET, Cell(8, "cn-east-3b", 1000, 40, message=expired)]
    rows = shifts(tmp_path, cells)
    con = connect(tmp_path / "coc.duckdb")
    try:
        patterns = {
            p for (p,) in con.execute("SELECT message_pattern FROM failure_messages").fetchall()
        }
    finally:
        con.close()
    keys = {key for (_, dimension, key) in rows if dimension == "message_pattern"}
    assert keys == patterns
    pattern = "TLS handshake with <ip>:<n> failed: certificate expired <n> days ago"
    row = rows[8, "message_pattern", pattern]
    # a pattern's denominator is every counted instance: the day's, and the window's
    assert (row["instances"], row["failed"]) == (3000, 40)
    assert (row["baseline_instances"], row["baseline_failed"]) == (7 * 2000, 0)
    assert row["alert"] is True


def test_canceled_instances_are_not_counted(tmp_path: Path) -> None:
    cells = QUIET + steady(range(9), "cn-east-3b", 1000, 10, canceled=500)
    rows = shifts(tmp_path, cells)
    zone = rows[8, "zone", "cn-east-3b"]
    assert (zone["instances"], zone["failed"], zone["failure_rate"]) == (1000, 10, 0.01)


def _alert(dimension: str, key: str | None, baseline: tuple[int, int], **kw: Any) -> ShiftAlert:
    base_failed, base_instances = baseline
    return ShiftAlert(
        dt=DAY0,
        dimension=dimension,
        key=key,
        instances=kw.get("instances", 2080),
        failed=kw.get("failed", 248),
        failure_rate=kw.get("failed", 248) / kw.get("instances", 2080),
        baseline_instances=base_instances,
        baseline_failed=base_failed,
        baseline_rate=base_failed / base_instances if base_instances else None,
        score=kw.get("score", 19.04),
        since=kw.get("since", DAY0),
        host_name=kw.get("host_name"),
        onset_baseline_rate=kw.get("onset_baseline_rate"),
        peak_score=kw.get("peak_score"),
    )


def test_an_episode_open_since_an_earlier_day_is_described_against_its_onset() -> None:
    """The day's own trailing baseline has taken the shift in by then: the line says what
    the episode is compared with (the rate frozen at its onset) and how long it is open."""
    later = _alert(
        "zone",
        "cn-north-4b",
        (1200, 9000),
        since=DAY0 - timedelta(days=2),
        score=1.6,
        onset_baseline_rate=0.0176,
        peak_score=19.04,
    )
    assert describe_alert(later) == (
        "zone cn-north-4b: 11.9% (248 of 2,080) against 1.8% before its onset, open since "
        f"{(DAY0 - timedelta(days=2)).isoformat()} (3 days), peak score 19.0"
    )


def test_describe_and_format_alerts() -> None:
    zone = _alert("zone", "cn-north-4b", (147, 8369))
    assert describe_alert(zone) == (
        "zone cn-north-4b: 11.9% (248 of 2,080) against 1.8% (147 of 8,369) in the 7 days "
        "before, since 2026-11-01, score 19.0"
    )
    new = _alert("script_version", "deploy v2", (0, 0), failed=150, instances=500, score=7.1)
    assert describe_alert(new) == (
        "script_version deploy v2: 30.0% (150 of 500) new: no runs in the 7 days before, "
        "since 2026-11-01, score 7.1"
    )
    host = _alert("host", "r-1", (1, 90), host_name="web-1", failed=9, instances=10)
    assert describe_alert(host).startswith("host r-1 (web-1): 90.0% (9 of 10) against 1.1%")
    rare = _alert("message_pattern", "x" * 150, (13, 71462), failed=36, instances=14032)
    assert describe_alert(rare).startswith(f"message_pattern {'x' * 99}…: 0.26% (36 of 14,032)")
    assert "against 0.018% (13 of 71,462)" in describe_alert(rare)

    assert format_alerts(None, []) == "Failure shifts: no data yet."
    assert format_alerts(DAY0, []) == "Failure shifts on 2026-11-01 (newest day): no alerts."
    text = format_alerts(DAY0, [zone, new])
    assert text.splitlines() == [
        "Failure shifts on 2026-11-01 (newest day): 2 alerts",
        f"  {describe_alert(zone)}",
        f"  {describe_alert(new)}",
    ]


def test_newest_alerts_and_the_check_read_the_newest_day(tmp_path: Path) -> None:
    cells = QUIET + steady(range(8), "cn-east-3b", 3000, 60) + [Cell(8, "cn-east-3b", 3000, 180)]
    rows = shifts(tmp_path, cells)
    newest, alerts = newest_alerts(tmp_path / "coc.duckdb")
    assert newest == DAY0 + timedelta(days=8)
    expected = sorted(
        (r for r in rows.values() if r["alert"] and r["dt"] == newest),
        key=lambda r: (-r["score"], r["dimension"], r["key"]),
    )
    assert [(a.dimension, a.key) for a in alerts] == [(r["dimension"], r["key"]) for r in expected]
    assert ("zone", "cn-east-3b") in [(a.dimension, a.key) for a in alerts]
    assert [a.score for a in alerts] == sorted((a.score for a in alerts), reverse=True)

    result = shift_check_result(newest, alerts)
    assert result.passed is False
    assert result.severity == AssetCheckSeverity.WARN
    assert result.description is not None
    assert result.description.splitlines() == [describe_alert(a) for a in alerts]
    assert result.metadata["alerts"].value == len(alerts)
    quiet = shift_check_result(newest, [])
    assert quiet.passed is True
    assert quiet.description == f"no failure shifts on {newest}"


def test_newest_alerts_of_a_file_built_before_the_mart(tmp_path: Path) -> None:
    import duckdb

    old = tmp_path / "old.duckdb"
    duckdb.connect(str(old)).close()
    assert newest_alerts(old) == (None, [])


def test_the_message_masking_has_one_home() -> None:
    """Every mart with message patterns calls the macro; none restates a regex."""
    sql = Path(__file__).parents[2] / "warehouse" / "sql"
    for mart in ("failure_messages", "failure_messages_daily", "failure_shifts"):
        text = (sql / "marts" / f"{mart}.sql").read_text()
        # a mart merged from per-day parts (mart_data.<part>) masks in the part
        parts = [p.read_text() for p in sql.glob("parts/*.sql") if f"mart_data.{p.stem}" in text]
        assert any("message_pattern(" in t for t in [text, *parts]), mart
    sources = [*sql.glob("marts/*.sql"), *sql.glob("parts/*.sql")]
    restating = [p.name for p in sources if "regexp_replace" in p.read_text()]
    assert restating == []
    assert "regexp_replace" in (sql / "macros.sql").read_text(encoding="utf-8")


def test_a_changed_day_rescores_the_days_it_reaches_like_a_full_rebuild(tmp_path: Path) -> None:
    # zone cn-east-3b at 1% but for a run of alert days 8-11 (each at least twice the 7 days
    # before it); three quiet zones beside it; 26 days, so days after the reach (D + 14) exist
    zone = "cn-east-3b"
    failed = {8: 30, 9: 75, 10: 175, 11: 350}
    quiet = [("cn-north-4a", 300, 3), ("cn-north-4b", 250, 4), ("cn-east-3a", 400, 8)]

    def cells(changes: dict[int, int]) -> list[Cell]:
        rates = failed | changes
        return [Cell(d, z, n, f) for d in range(26) for z, n, f in quiet] + [
            Cell(d, zone, 500, rates.get(d, 5)) for d in range(26)
        ]

    def rows(path: str) -> dict[tuple[int, str, str | None], tuple]:
        con = connect(path)
        try:
            found = con.execute("SELECT * FROM failure_shifts").fetchall()
        finally:
            con.close()
        return {((r[0] - DAY0).days, r[1], r[2]): r for r in found}

    root, path = tmp_path / "wh", str(tmp_path / "coc.duckdb")
    write_cells(root, cells({}))
    build_warehouse(warehouse=str(root), duckdb_path=path)
    before = rows(path)
    assert [before[d, "zone", zone][-2] for d in range(7, 13)] == [False] + [True] * 4 + [False]
    assert before[11, "zone", zone][-1] == DAY0 + timedelta(days=8)

    def rematerialize(
        changes: dict[int, int], day: int
    ) -> dict[tuple[int, str, str | None], tuple]:
        write_cells(root, [c for c in cells(changes) if c.day == day])
        built = build_warehouse(
            warehouse=str(root), duckdb_path=path, changed_days=[DAY0 + timedelta(days=day)]
        )
        assert not built.full
        full = build_warehouse(
            warehouse=str(root), duckdb_path=str(tmp_path / f"full-{day}.duckdb"), rebuild=True
        )
        after = rows(path)
        assert after == rows(full.duckdb_path)
        return after

    # day 9 back at 1%: the run splits, days 10-11 start a new one (since is a day after the
    # change, inside its reach); baselines and scores move on days 10-16 and the dispersion's
    # window to day 23; nothing after the reach changes
    after = rematerialize({9: 5}, day=9)
    assert [after[d, "zone", zone][-2] for d in range(8, 12)] == [True, False, True, True]
    assert after[11, "zone", zone][-1] == after[10, "zone", zone][-1] == DAY0 + timedelta(days=10)
    moved = {key[0] for key, row in after.items() if row != before.get(key)}
    assert {9, 10, 11, 16} <= moved <= set(range(9, 24))

    # day 11 lower but still alerting: its run continues from day 10, before the changed day,
    # so its since is carried from the stored row of day 10
    before = after
    after = rematerialize({9: 5, 11: 200}, day=11)
    assert after[11, "zone", zone][-2] is True
    assert after[11, "zone", zone][-1] == DAY0 + timedelta(days=10)
    moved = {key[0] for key, row in after.items() if row != before.get(key)}
    assert {11, 12} <= moved <= set(range(11, 26))
