"""The incremental build against a full rebuild of the same warehouse, row for row.

The hand-checked dataset of ``tests/unit/test_marts.py`` plus more days, built in full; then
a day re-materialized with other rows, a day that became empty (a run found no tickets: valid
empty files), a day whose files went away and a new day; then the incremental build of the
previous file is compared with a full rebuild (``rebuild=True``) of the same Parquet into
another file, every mart and every row, including the all-time marts' distinct counts of
hosts that fail with the same message on several days.
"""

from __future__ import annotations

import logging
import shutil
from datetime import date
from pathlib import Path

import pytest

from pipelines.transform.schemas import TABLES
from tests.support.duck import query
from tests.support.lake import commit_file, commit_partition, delete_partition
from tests.support.mart_dataset import (
    BATCHES,
    CONN_A,
    CONN_B,
    D1,
    D2,
    DB1,
    EXIT_A,
    INSTANCES,
    ORDERS,
    WEB1,
    WEB2,
    at,
    instance_row,
    order_row,
)
from warehouse import build_warehouse, connect
from warehouse.build import MARTS_DIR

D3 = date(2026, 11, 26)
D4 = date(2026, 11, 27)
D5 = date(2026, 12, 1)  # another month: the all-time marts merge two months
MARTS = sorted(path.stem for path in MARTS_DIR.glob("*.sql"))

# D3 and D4: the same hosts failing with the same patterns as on D1 (distinct hosts and
# tickets across days), D4's latest failure the newest example of its pattern.
EXTRA = {
    D3: [
        ("t6", 1, 601, WEB2, "ABNORMAL", CONN_A, at(D3, "08:00:00"), at(D3, "08:00:03")),
        ("t6", 1, 602, DB1, "ABNORMAL", CONN_B, at(D3, "08:00:00"), at(D3, "08:00:04")),
        ("t6", 1, 603, WEB1, "FINISHED", "ok", at(D3, "08:00:00"), at(D3, "08:00:05")),
    ],
    D4: [
        ("t7", 1, 701, WEB1, "ABNORMAL", CONN_B, at(D4, "08:00:00"), at(D4, "08:00:03")),
        ("t7", 1, 702, DB1, "ABNORMAL", EXIT_A, at(D4, "08:00:00"), None),
    ],
}
EXTRA_ORDERS = {
    D3: [("t6", "restart-nginx", "dave", "ABNORMAL", at(D3, "08:00:00"), at(D3, "08:01:00"))],
    D4: [("t7", "patch-kernel", "erin", "ABNORMAL", at(D4, "08:00:00"), at(D4, "08:01:00"))],
}


def publish(root: Path, table: str, day: date, rows: list[dict], run: str) -> None:
    """What a publish does: the day is this run's file afterwards."""
    commit_partition(root, table, day, rows, f"part-{run}")


def publish_day(root: Path, day: date, instances: list, orders: list, batches: list, run: str):
    publish(root, "execution_instances", day, [instance_row(*r) for r in instances], run)
    publish(root, "script_orders", day, [order_row(*r) for r in orders], run)
    publish(
        root,
        "order_batches",
        day,
        [
            {"execute_uuid": t, "batch_index": b, "total_instances": n, "instances_ingested": n}
            for t, b, n in batches
        ],
        run,
    )


def first_history(root: Path) -> None:
    for day in (D1, D2):
        publish_day(root, day, INSTANCES[day], ORDERS[day], BATCHES[day], "r0")
    for day in (D3, D4):
        publish_day(
            root, day, EXTRA[day], EXTRA_ORDERS[day], [(EXTRA_ORDERS[day][0][0], 1, 3)], "r0"
        )


def changes(root: Path) -> None:
    """D2 re-materialized with changed rows, D3 empty, D4 gone, D5 new."""
    d2 = [r for r in INSTANCES[D2] if r[2] != 302] + [
        ("t3", 1, 302, WEB2, "FINISHED", "ok", at(D2, "09:00:00"), at(D2, "09:00:30")),
        ("t3", 1, 307, WEB2, "ABNORMAL", CONN_A, at(D2, "23:00:00"), at(D2, "23:59:00")),
    ]
    publish_day(root, D2, d2, ORDERS[D2], BATCHES[D2], "r1")
    publish_day(root, D3, [], [], [], "r1")
    for table in TABLES:
        delete_partition(root, table, D4)
    d5 = [("t8", 1, 801, DB1, "ABNORMAL", CONN_B, at(D5, "07:00:00"), at(D5, "07:00:01"))]
    orders = [("t8", "restart-nginx", "frank", "ABNORMAL", at(D5, "07:00:00"), None)]
    publish_day(root, D5, d5, orders, [("t8", 1, 1)], "r1")


def snapshot(duckdb_path: str) -> dict[str, list[tuple]]:
    con = connect(duckdb_path)
    try:
        return {m: con.execute(f"SELECT * FROM {m} ORDER BY ALL").fetchall() for m in MARTS}
    finally:
        con.close()


def test_incremental_build_equals_a_full_rebuild(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    first_history(root)
    path = str(tmp_path / "coc.duckdb")
    first = build_warehouse(warehouse=str(root), duckdb_path=path)
    assert first.full and first.full_reason == "no previous file"
    before = snapshot(path)
    shutil.copyfile(path, path + ".before")

    changes(root)
    # the run names D2 and D3 (D4's files vanished and D5 appeared: the build sees them)
    after = build_warehouse(warehouse=str(root), duckdb_path=path, changed_days=[D2, D3])
    assert not after.full
    assert after.changed_days == (D2, D3, D4, D5)
    full = build_warehouse(
        warehouse=str(root), duckdb_path=str(tmp_path / "full.duckdb"), rebuild=True
    )
    assert full.full and full.full_reason == "asked"
    incremental, rebuilt = snapshot(path), snapshot(full.duckdb_path)
    for mart in MARTS:
        assert incremental[mart] == rebuilt[mart], mart
    assert (
        after.rows
        == full.rows
        == {
            "execution_instances": 9 + 9 + 1,
            "script_orders": 2 + 3 + 1,
            "order_batches": 3 + 3 + 1,
        }
    )
    assert incremental != before  # the changes did change the marts
    # the tally kept by difference holds each pair of the monthly host sets once, with the
    # months it appears in, as a count over every month would
    tally = "SELECT * FROM mart_data.failure_message_host_months ORDER BY ALL"
    recount = (
        "SELECT message_pattern, resource_id, count(*) FROM "
        "mart_data.failure_message_hosts_months GROUP BY ALL ORDER BY ALL"
    )
    assert query(path, tally) == query(path, recount) == query(full.duckdb_path, tally)
    assert query(path, tally) != query(path + ".before", tally)

    # the all-time marts, as a reading of the data: distinct hosts and tickets across days
    conn = "Connection to <ip>:<n> refused after <n> retries"
    assert query(
        path,
        f"SELECT instances, tickets, hosts FROM failure_messages WHERE message_pattern = '{conn}'",
    ) == [(4, 3, 2)]  # D1: t1 on r2 and r3; D2: t3 on r2; D5: t8 on r3 (D3, D4 are gone)
    assert query(
        path, "SELECT tickets, instances, failed FROM host_failures WHERE resource_id = 'r2'"
    ) == [(3, 4, 3)]  # D1: t1, t2 (2 failed); D2: t3 (302 now FINISHED, 307 failed)
    assert query(path, "SELECT DISTINCT dt FROM failure_rates_daily ORDER BY dt") == [
        (D1,),
        (D2,),
        (D5,),
    ]


def test_only_the_changed_days_are_recomputed_and_rebuild_repairs(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    first_history(root)
    path = str(tmp_path / "coc.duckdb")
    build_warehouse(warehouse=str(root), duckdb_path=path)
    # spoil a stored row of an unchanged day: an incremental build must not touch it
    con = connect(path, read_only=False)
    con.execute("UPDATE mart_data.failure_rates_daily SET failed = 999 WHERE dt = ?", [D1])
    con.close()
    spoiled = "SELECT count(*) FROM failure_rates_daily WHERE failed = 999"

    publish_day(root, D3, [], [], [], "r1")
    result = build_warehouse(warehouse=str(root), duckdb_path=path)
    assert result.changed_days == (D3,)
    assert query(path, spoiled)[0][0] > 0
    assert query(path, f"SELECT count(*) FROM failure_rates_daily WHERE dt = '{D3}'") == [(0,)]

    nothing = build_warehouse(warehouse=str(root), duckdb_path=path)
    assert not nothing.full and nothing.changed_days == ()

    repaired = build_warehouse(warehouse=str(root), duckdb_path=path, rebuild=True)
    assert repaired.full
    assert query(path, spoiled) == [(0,)]


def test_changed_definitions_rebuild_in_full(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    first_history(root)
    path = str(tmp_path / "coc.duckdb")
    build_warehouse(warehouse=str(root), duckdb_path=path)
    con = connect(path, read_only=False)
    con.execute("UPDATE mart_data.build_state SET value = 'built by older SQL'")
    con.execute("UPDATE mart_data.failure_rates_daily SET failed = 999")
    con.close()
    result = build_warehouse(warehouse=str(root), duckdb_path=path)
    assert result.full and result.full_reason == "definitions changed"
    assert query(path, "SELECT count(*) FROM failure_rates_daily WHERE failed = 999") == [(0,)]


def test_failed_incremental_build_keeps_the_previous_file(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    first_history(root)
    path = tmp_path / "coc.duckdb"
    build_warehouse(warehouse=str(root), duckdb_path=str(path))
    before = path.read_bytes()
    broken = root / "execution_instances" / f"dt={D5.isoformat()}" / "part-r9.parquet"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not parquet")
    commit_file(root, "execution_instances", D5, broken)
    with pytest.raises(Exception, match=r"part-r9\.parquet"):
        build_warehouse(warehouse=str(root), duckdb_path=str(path))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    # once the day is fixed, the next build picks it up although no run names it
    publish_day(root, D5, [], [], [], "r10")
    assert build_warehouse(warehouse=str(root), duckdb_path=str(path)).changed_days == (D5,)


def test_an_incremental_build_reads_only_the_changed_days(tmp_path: Path) -> None:
    """D2's file made unreadable after the first build: a build of D5 never opens it; a
    full rebuild does (and fails, leaving the file as it was)."""
    root = tmp_path / "wh"
    first_history(root)
    path = str(tmp_path / "coc.duckdb")
    build_warehouse(warehouse=str(root), duckdb_path=path)
    [d2] = (root / "execution_instances" / f"dt={D2.isoformat()}").glob("*.parquet")
    d2.write_bytes(b"not parquet any more")
    # (the same name: the build sees no change of D2's files, as when nothing rewrote it)
    d5 = [("t8", 1, 801, DB1, "ABNORMAL", CONN_B, at(D5, "07:00:00"), at(D5, "07:00:01"))]
    orders = [("t8", "restart-nginx", "frank", "ABNORMAL", at(D5, "07:00:00"), None)]
    publish_day(root, D5, d5, orders, [("t8", 1, 1)], "r1")
    result = build_warehouse(warehouse=str(root), duckdb_path=path, changed_days=[D5])
    assert result.changed_days == (D5,)
    assert query(path, f"SELECT sum(failed) FROM failure_rates_daily WHERE dt = '{D5}'") == [(1,)]
    with pytest.raises(Exception, match=d2.name):
        build_warehouse(warehouse=str(root), duckdb_path=path, rebuild=True)


def test_a_full_rebuild_day_by_day_equals_one_in_one_go(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The per-day SQL runs over groups of at most ``chunk_rows`` instances (whole days):
    groups of one day give the same marts as one group of every day, two months included."""
    root = tmp_path / "wh"
    first_history(root)
    changes(root)
    whole = build_warehouse(
        warehouse=str(root), duckdb_path=str(tmp_path / "whole.duckdb"), chunk_rows=10**9
    )
    with caplog.at_level(logging.INFO, logger="warehouse.build"):
        daily = build_warehouse(
            warehouse=str(root), duckdb_path=str(tmp_path / "daily.duckdb"), chunk_rows=1
        )
    # a long rebuild shows its progress, group by group
    assert [r.getMessage() for r in caplog.records if "groups of days" in r.getMessage()] == [
        f"build: days {D1} to {D1} (1 of 3 groups of days)",
        f"build: days {D2} to {D2} (2 of 3 groups of days)",
        f"build: days {D3} to {D5} (3 of 3 groups of days)",
    ]
    # D1, D2, then D3 (empty: no instances) with D5
    assert (whole.chunks, daily.chunks) == (1, 3)
    one, by_day = snapshot(whole.duckdb_path), snapshot(daily.duckdb_path)
    for mart in MARTS:
        assert by_day[mart] == one[mart], mart
    assert all(one[mart] for mart in ("failure_messages", "host_failures", "instances_daily"))
    assert daily.rows == whole.rows


def test_an_empty_warehouse_builds_every_mart(tmp_path: Path) -> None:
    built = build_warehouse(warehouse=str(tmp_path / "wh"), duckdb_path=str(tmp_path / "c.duckdb"))
    assert built.chunks == 1 and built.marts == tuple(MARTS)
    assert all(rows == [] for rows in snapshot(built.duckdb_path).values())


def test_a_rollup_that_reads_every_day_is_refused(tmp_path: Path, monkeypatch) -> None:
    """A rollup must read its parts through build_window(dt), or each build would merge the
    whole history's parts again."""
    import warehouse.store as store

    rollups = tmp_path / "rollups"
    shutil.copytree(store.ROLLUPS_DIR, rollups)
    lazy = rollups / "host_failure_parts_months.sql"
    lazy.write_text(lazy.read_text().replace("WHERE build_window(dt)\n", ""))
    monkeypatch.setattr(store, "ROLLUPS_DIR", rollups)
    root = tmp_path / "wh"
    first_history(root)
    with pytest.raises(ValueError, match=r"host_failure_parts_months\.sql must filter"):
        build_warehouse(warehouse=str(root), duckdb_path=str(tmp_path / "c.duckdb"))


def test_a_day_republished_while_the_build_reads_it_leaves_the_build_on_its_version(
    tmp_path: Path, monkeypatch
) -> None:
    """Another run republishes days after the build pinned the tables: the superseded files
    stay until vacuumed, so the build reads the version it pinned, whole, and the next
    build takes the new one."""
    import warehouse.build as build

    root = tmp_path / "wh"
    first_history(root)
    path = str(tmp_path / "coc.duckdb")
    build_warehouse(warehouse=str(root), duckdb_path=path)
    pinned_before = snapshot(path)
    real = build.day_chunks
    calls = []

    def republish_after_pinning(con, days, files, chunk_rows):
        if not calls:
            changes(root)  # the other run's publish, between pinning and reading
        calls.append(days)
        return real(con, days, files, chunk_rows)

    monkeypatch.setattr(build, "day_chunks", republish_after_pinning)
    during = build_warehouse(warehouse=str(root), duckdb_path=path, changed_days=[D2])
    assert during.changed_days == (D2,) and len(calls) == 1
    assert snapshot(path) == pinned_before
    after = build_warehouse(warehouse=str(root), duckdb_path=path)
    assert after.changed_days == (D2, D3, D4, D5)
    full = build_warehouse(
        warehouse=str(root), duckdb_path=str(tmp_path / "full.duckdb"), rebuild=True
    )
    assert snapshot(path) == snapshot(full.duckdb_path)
