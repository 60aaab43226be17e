"""Building ``coc.duckdb`` over real Parquet folders in ``tmp_path``, read back through DuckDB."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.transform.schemas import TABLES
from tests.support.lake import commit_partition
from warehouse import build_warehouse, connect
from warehouse.build import BuildError

D1 = date(2026, 11, 24)
D2 = date(2026, 11, 25)
MARTS = (
    "alert_episodes",
    "failure_messages",
    "failure_messages_daily",
    "failure_rates_daily",
    "failure_shifts",
    "host_failures",
    "host_failures_daily",
    "instances_daily",
    "script_durations_daily",
    "ticket_outcomes",
)


def write_partition(root: Path, table: str, day: date, rows: list[dict], name="part-0") -> Path:
    return commit_partition(root, table, day, rows, name)


def instance(ticket: str, iid: int, status: str = "FINISHED", **extra) -> dict:
    created = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    return {
        "execute_uuid": ticket,
        "batch_index": 1,
        "instance_id": iid,
        "status": status,
        "created_at": created,
        "finished_at": created,
        "duration_ms": 0,
        "resource_id": f"r{iid}",
        "custom_attributes": [("k", "v")],
        **extra,
    }


def write_day(root: Path, day: date, tickets: int = 1, per_ticket: int = 2) -> None:
    """A small consistent day: tickets, one batch each, instances in it."""
    uuids = [f"{day.isoformat()}-t{n}" for n in range(tickets)]
    write_partition(
        root,
        "execution_instances",
        day,
        [instance(u, n * 10 + i) for n, u in enumerate(uuids) for i in range(per_ticket)],
    )
    write_partition(
        root, "script_orders", day, [{"execute_uuid": u, "script_name": "s"} for u in uuids]
    )
    write_partition(
        root,
        "order_batches",
        day,
        [{"execute_uuid": u, "batch_index": 1, "total_instances": per_ticket} for u in uuids],
    )


def build(root: Path) -> str:
    return build_warehouse(warehouse=str(root), duckdb_path=str(root / "coc.duckdb")).duckdb_path


def describe(con: duckdb.DuckDBPyConnection, view: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {view}").fetchall()]


def count(duckdb_path: str, sql: str) -> int:
    con = connect(duckdb_path)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_empty_warehouse_has_typed_empty_views(tmp_path: Path) -> None:
    result = build_warehouse(warehouse=str(tmp_path / "wh"), duckdb_path=str(tmp_path / "c.db"))
    assert result.tables == tuple(TABLES)
    assert result.marts == MARTS
    assert result.views == (*TABLES, "schema_drift", *MARTS)
    assert result.rows == dict.fromkeys(TABLES, 0)
    assert result.empty_tables == tuple(TABLES)

    # The same tables with one file each: the empty views must have the very same types.
    filled = tmp_path / "filled"
    write_day(filled, D1)
    filled_result = build_warehouse(warehouse=str(filled), duckdb_path=str(filled / "coc.duckdb"))
    assert filled_result.empty_tables == ()

    con = connect(result.duckdb_path)
    full = connect(filled_result.duckdb_path)
    try:
        for table, schema in TABLES.items():
            columns = describe(con, table)
            assert [name for name, _ in columns] == [*schema.names, "dt"]
            assert columns[-1] == ("dt", "DATE")
            assert columns == describe(full, table)
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
        for mart in MARTS:
            assert con.execute(f"SELECT count(*) FROM {mart}").fetchone()[0] == 0
            assert describe(con, mart) == describe(full, mart)
    finally:
        con.close()
        full.close()


def test_types_and_values_read_back(tmp_path: Path) -> None:
    write_day(tmp_path, D1)
    con = connect(build(tmp_path))
    try:
        types = dict(describe(con, "execution_instances"))
        row = con.execute(
            "SELECT dt, created_at, custom_attributes, message FROM execution_instances "
            "ORDER BY instance_id LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["batch_index"] == "INTEGER"
    assert types["custom_attributes"] == "MAP(VARCHAR, VARCHAR)"
    assert row == (D1, datetime(2026, 11, 24, 10, 0, tzinfo=UTC), {"k": "v"}, None)


def test_rebuild_is_idempotent_and_atomic(tmp_path: Path) -> None:
    write_day(tmp_path, D1, tickets=2)
    first = build_warehouse(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "coc.duckdb"))
    reader = connect(first.duckdb_path)  # a BI tool holding the old file open
    try:
        second = build_warehouse(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "coc.duckdb"))
        assert second == first
        assert reader.execute("SELECT count(*) FROM execution_instances").fetchone()[0] == 4

        write_day(tmp_path, D2, tickets=1)
        third = build_warehouse(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "coc.duckdb"))
        assert third.rows == {"execution_instances": 6, "script_orders": 3, "order_batches": 3}
        # The file held open stays usable and whole: its views name the files of the table
        # versions it pinned, so it answers as when it was built, tables and marts alike.
        assert reader.execute("SELECT count(*) FROM execution_instances").fetchone()[0] == 4
        assert reader.execute("SELECT count(*) FROM ticket_outcomes").fetchone()[0] == 2
    finally:
        reader.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["coc.duckdb"]
    assert count(third.duckdb_path, "SELECT count(*) FROM ticket_outcomes") == 3


def test_views_use_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "it's a warehouse"  # a quote in the path must not break the SQL
    write_day(root, D1)
    monkeypatch.chdir(tmp_path)
    result = build_warehouse(warehouse="it's a warehouse", duckdb_path="coc.duckdb")
    assert result.duckdb_path == str(tmp_path / "coc.duckdb")
    monkeypatch.chdir(root / "execution_instances")
    assert count(result.duckdb_path, "SELECT count(*) FROM execution_instances") == 2


def test_one_day_filter_reads_only_that_days_files(tmp_path: Path) -> None:
    write_day(tmp_path, D1)
    write_day(tmp_path, D2)
    duckdb_path = build(tmp_path)
    assert count(duckdb_path, "SELECT count(*) FROM execution_instances") == 4

    # Break D2's file: D1 alone still answers, so D2's file is not even opened.
    (tmp_path / "execution_instances" / f"dt={D2}" / "part-0.parquet").write_bytes(b"not parquet")
    one_day = f"WHERE dt = DATE '{D1}'"
    assert count(duckdb_path, f"SELECT count(*) FROM execution_instances {one_day}") == 2
    assert count(duckdb_path, f"SELECT sum(instances) FROM failure_rates_daily {one_day}") == 2
    with pytest.raises(duckdb.Error, match=r"part-0\.parquet"):
        count(duckdb_path, "SELECT count(*) FROM execution_instances")


def test_staging_and_stray_files_are_never_read(tmp_path: Path) -> None:
    write_day(tmp_path, D1)
    # A writer's staging area: valid Parquet with the same layout below it, and junk.
    for table in TABLES:
        staged = tmp_path / "_staging" / "run-1" / table / f"dt={D2}"
        staged.mkdir(parents=True)
        pq.write_table(TABLES[table].empty_table(), staged / "part-0.parquet")
        (staged / "part-1.parquet").write_bytes(b"half written")
    # Stray names beside the real partitions: only dt=YYYY-MM-DD/*.parquet is a partition.
    stray = tmp_path / "execution_instances"
    for folder in (f"dt={D2}.tmp", "_staging", f"dt={D2}.old"):
        (stray / folder).mkdir()
        (stray / folder / "part-0.parquet").write_bytes(b"junk")
    (stray / f"dt={D1}" / "part-0.parquet.tmp").write_bytes(b"junk")

    result = build_warehouse(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "coc.duckdb"))
    assert result.rows == {"execution_instances": 2, "script_orders": 1, "order_batches": 1}
    assert count(result.duckdb_path, "SELECT count(DISTINCT dt) FROM execution_instances") == 1


def test_marts_work_while_some_tables_are_empty(tmp_path: Path) -> None:
    write_partition(tmp_path, "execution_instances", D1, [instance("t", 1, "ABNORMAL")])
    result = build_warehouse(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "coc.duckdb"))
    assert result.empty_tables == ("script_orders", "order_batches")
    con = connect(result.duckdb_path)
    try:
        assert con.execute("SELECT * FROM failure_rates_daily").fetchall() == [
            (D1, None, None, None, None, 1, 1, 1.0)
        ]
        assert con.execute("SELECT count(*) FROM ticket_outcomes").fetchone()[0] == 0
    finally:
        con.close()


def test_failed_build_keeps_the_previous_file(tmp_path: Path) -> None:
    write_day(tmp_path, D1)
    duckdb_path = build(tmp_path)
    before = Path(duckdb_path).read_bytes()
    # A file whose schema DuckDB cannot read makes the view fail to bind.
    (tmp_path / "order_batches" / f"dt={D1}" / "part-0.parquet").write_bytes(b"x" * 64)
    with pytest.raises(duckdb.Error):
        build(tmp_path)
    assert Path(duckdb_path).read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["coc.duckdb", *sorted(TABLES)]


def test_unsupported_warehouses_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="s3://"):
        build_warehouse(warehouse="s3://bucket/coc", duckdb_path=str(tmp_path / "coc.duckdb"))
    with pytest.raises(ValueError, match="gs://"):
        build_warehouse(warehouse="gs://bucket/coc", duckdb_path=str(tmp_path / "coc.duckdb"))
    with pytest.raises(BuildError, match="COC_WAREHOUSE must not contain glob"):
        build_warehouse(warehouse=str(tmp_path / "w[1]"), duckdb_path=str(tmp_path / "c.db"))
    assert list(tmp_path.iterdir()) == []
