"""The dashboard's queries over a real ingested warehouse, checked against the raw views."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.bi.conftest import BiWarehouse, copy_warehouse
from tests.support.dashboard_counts import COUNTED, raw_counts
from tests.support.lake import delete_partition
from warehouse.build import build_warehouse
from warehouse.dashboard import queries as q
from warehouse.report import newest_alerts


@pytest.fixture
def con(bi_warehouse: BiWarehouse):
    connection = q.open_warehouse(bi_warehouse.duckdb_path)
    yield connection
    connection.close()


def test_default_filters_are_the_last_seven_days_with_data(
    con: duckdb.DuckDBPyConnection, bi_warehouse: BiWarehouse
) -> None:
    options = q.options(con)
    f = options.default_filters()
    assert f is not None
    assert (f.start, f.end) == (bi_warehouse.days[-7], bi_warehouse.days[-1])
    assert len(options.regions) > 1 and len(options.scripts) > 1 and options.applications


def test_headline_equals_the_raw_instances_and_the_previous_period(
    con: duckdb.DuckDBPyConnection,
) -> None:
    f = q.options(con).default_filters()
    assert f is not None
    h = q.headline(con, f)
    assert (h.instances, h.failed) == raw_counts(con, f)
    assert (h.previous_instances, h.previous_failed) == raw_counts(con, f.previous())
    assert f.previous().end == f.start - timedelta(days=1) and f.previous().days == f.days
    assert h.failure_rate == pytest.approx(h.failed / h.instances)
    assert h.previous_instances > 0 and h.rate_change is not None


def test_filters_narrow_every_panel(con: duckdb.DuckDBPyConnection) -> None:
    options = q.options(con)
    base = options.default_filters()
    assert base is not None
    f = q.Filters(
        start=base.start,
        end=base.end,
        regions=options.regions[:1],
        scripts=options.scripts[:2],
    )
    everything, narrowed = q.refresh(con, base), q.refresh(con, f)
    assert (narrowed.headline.instances, narrowed.headline.failed) == raw_counts(con, f)
    assert narrowed.headline.instances < everything.headline.instances
    assert set(narrowed.rate_by_region["region_id"]) == set(options.regions[:1])
    for ranked in (narrowed.zones, narrowed.scripts, narrowed.agent_statuses):
        assert ranked["failed"].sum() <= narrowed.headline.failed
    assert narrowed.agent_statuses["instances"].sum() == narrowed.headline.instances
    assert set(narrowed.tickets["script_name"]) <= set(options.scripts[:2])


def test_top_hosts_and_messages_match_the_raw_failures(con: duckdb.DuckDBPyConnection) -> None:
    f = q.options(con).default_filters()
    assert f is not None
    hosts = q.top_hosts(con, f)
    top = hosts.iloc[0]
    raw = con.execute(
        "SELECT count(*) FILTER (WHERE status = 'ABNORMAL'), "
        f"count(*) FILTER (WHERE {COUNTED}) FROM execution_instances "
        "WHERE resource_id = ? AND dt BETWEEN ? AND ?",
        [top["resource_id"], f.start, f.end],
    ).fetchone()
    assert raw == (top["failed"], top["instances"])
    assert list(hosts["failed"]) == sorted(hosts["failed"], reverse=True)
    messages = q.top_messages(con, f)
    assert messages["failed"].iloc[0] >= messages["failed"].iloc[-1] > 0
    assert messages["example_message"].notna().all()


def test_daily_message_patterns_are_those_of_failure_messages(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """failure_messages_daily repeats failure_messages' masking: both must agree."""
    daily = con.execute(
        "SELECT message_pattern, sum(instances) FROM failure_messages_daily GROUP BY 1"
    ).fetchall()
    whole = con.execute("SELECT message_pattern, instances FROM failure_messages").fetchall()
    assert sorted(daily, key=str) == sorted(whole, key=str)


def test_drill_down_reaches_the_failed_instances(con: duckdb.DuckDBPyConnection) -> None:
    f = q.options(con).default_filters()
    assert f is not None
    ticket = q.tickets(con, f).iloc[0]
    day, uuid = ticket["dt"].date(), ticket["execute_uuid"]
    batches = q.ticket_batches(con, day, uuid)
    assert int(batches["failed"].sum()) == ticket["failed"] > 0
    assert len(batches) == ticket["batches"]
    failed = q.failed_instances(con, day, uuid)
    assert len(failed) == ticket["failed"]
    assert failed["message"].notna().all() and failed["host_name"].notna().any()
    one = int(failed["batch_index"].iloc[0])
    assert set(q.failed_instances(con, day, uuid, one)["batch_index"]) == {one}


def test_alerts_are_failure_shifts_newest_day_absent_then_hand_made(
    bi_warehouse: BiWarehouse, tmp_path: Path
) -> None:
    copy = copy_warehouse(bi_warehouse, tmp_path / "wh")
    con = q.open_warehouse(copy.duckdb_path)
    built = q.alerts(con)
    con.close()
    newest, expected = newest_alerts(copy.duckdb_path)  # what coc-etl report prints
    assert built is not None
    assert [(d, k) for d, k in zip(built["dimension"], built["key"], strict=True)] == [
        (a.dimension, a.key) for a in expected
    ]
    assert all(d.date() == newest for d in built["dt"])
    writer = duckdb.connect(str(copy.duckdb_path))
    writer.execute("DROP VIEW failure_shifts")  # a file built before the mart existed
    writer.close()
    con = q.open_warehouse(copy.duckdb_path)
    assert q.alerts(con) is None
    con.close()
    writer = duckdb.connect(str(copy.duckdb_path))
    writer.execute(
        """
        CREATE VIEW failure_shifts AS SELECT * FROM (VALUES
            (DATE '2026-11-24', 'region', 'cn-east-3', 100, 30, 0.3, 1000, 20, 0.02, 9.5,
                true, DATE '2026-11-23'),
            (DATE '2026-11-24', 'host', 'h1', 10, 1, 0.1, 100, 9, 0.09, 0.2, false, NULL),
            (DATE '2026-11-23', 'zone', 'z', 10, 9, 0.9, 100, 1, 0.01, 20.0, true,
                DATE '2026-11-23')
        ) AS t(dt, dimension, key, instances, failed, failure_rate, baseline_instances,
            baseline_failed, baseline_rate, score, alert, since)
        """
    )
    writer.close()
    con = q.open_warehouse(copy.duckdb_path)
    shown = q.alerts(con)
    con.close()
    assert shown is not None
    assert list(shown["key"]) == ["cn-east-3"]
    assert shown["since"].iloc[0].date() == date(2026, 11, 23)
    assert shown["baseline_rate"].iloc[0] == pytest.approx(0.02)


def test_empty_warehouse_has_no_default_range(tmp_path: Path) -> None:
    path = build_warehouse(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "coc.duckdb"))
    con = q.open_warehouse(path.duckdb_path)
    options = q.options(con)
    con.close()
    assert options.default_filters() is None


def test_a_missing_or_corrupt_file_is_a_clear_error_and_stays_as_it_was(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "coc.duckdb"
    with pytest.raises(q.DashboardError, match=r"no DuckDB file at .*nowhere.*make demo"):
        q.open_warehouse(missing)
    assert not missing.parent.exists()
    corrupt = tmp_path / "coc.duckdb"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(q.DashboardError, match=r"coc.duckdb is not a coc.duckdb") as info:
        q.open_warehouse(corrupt)
    assert "build-warehouse" not in str(info.value) and "make demo" not in str(info.value)
    assert corrupt.read_bytes() == b"this is not a database" * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coc.duckdb"]


def test_an_unreadable_parquet_file_is_named_by_the_drill_down(
    bi_warehouse: BiWarehouse, tmp_path: Path
) -> None:
    copy = copy_warehouse(bi_warehouse, tmp_path / "wh")
    con = q.open_warehouse(copy.duckdb_path)
    f = q.options(con).default_filters()
    assert f is not None
    ticket = q.tickets(con, f).iloc[0]
    day = ticket["dt"].date()
    broken = next((copy.root / "execution_instances" / f"dt={day}").glob("*.parquet"))
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(q.DashboardError, match=broken.name):
        q.failed_instances(con, day, ticket["execute_uuid"])
    headline = q.headline(con, f)  # the marts were computed at build time: still readable
    con.close()
    assert headline.instances > 0
    assert broken.read_bytes() == b"PAR1 not really"


def test_freshness_held_connection_keeps_its_snapshot_until_all_close(
    bi_warehouse: BiWarehouse, tmp_path: Path
) -> None:
    """What a BI reader sees after a rebuild (the README's "Freshness")."""
    copy = copy_warehouse(bi_warehouse, tmp_path / "wh")
    sql = "SELECT sum(instances) FROM instances_daily"
    held = q.open_warehouse(copy.duckdb_path)
    before = held.execute(sql).fetchone()
    day = bi_warehouse.days[-2]
    for table in ("execution_instances", "script_orders", "order_batches"):
        delete_partition(copy.root, table, day)  # a day removed from the tables
    build_warehouse(warehouse=str(copy.root), duckdb_path=str(copy.duckdb_path))
    # the held connection, and any other one opened in the same process meanwhile, still
    # answer from the file they opened
    assert held.execute(sql).fetchone() == before
    other = q.open_warehouse(copy.duckdb_path)
    assert other.execute(sql).fetchone() == before
    other.close()
    held.close()
    # once every connection is closed, the next one (the dashboard's next refresh) is fresh
    fresh = q.open_warehouse(copy.duckdb_path)
    after = fresh.execute(sql).fetchone()
    fresh.close()
    assert before is not None and after is not None and after[0] < before[0]


def test_a_duckdb_file_that_is_not_a_warehouse_is_named_without_advice_to_build_over_it(
    tmp_path: Path,
) -> None:
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE precious AS SELECT 1 AS x")
    with pytest.raises(q.DashboardError, match=r"other.duckdb is not a coc.duckdb") as info:
        q.open_warehouse(other)
    message = str(info.value)
    assert "coc-etl did not build" in message and "point --duckdb or COC_DUCKDB" in message
    assert "build-warehouse" not in message and "make demo" not in message
