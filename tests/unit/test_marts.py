"""Every mart against a small hand-checked dataset, asserting exact values.

Two days, five tickets, seventeen instances on three hosts and one instance without a host,
every instance status, NULL group keys, and failure messages that differ only in numbers,
IP addresses, UUIDs, paths and whitespace. The expected rows below were worked out by hand
from the tables in this file (see the comments), not by running the marts' SQL.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tests.support.duck import query
from tests.support.mart_dataset import (
    BATCHES,
    CONN_B,
    D1,
    D2,
    EXIT_B,
    INSTANCES,
    ORDERS,
    TASK_B,
    WEB1,
    at,
    instance_row,
    order_row,
    write_partition,
)
from warehouse import build_warehouse, connect, failure_report, format_report
from warehouse.report import ReportRow


def write_dataset(root: Path, instances=INSTANCES, orders=ORDERS, batches=BATCHES) -> None:
    for day, rows in instances.items():
        write_partition(root, "execution_instances", day, [instance_row(*r) for r in rows])
    for day, rows in orders.items():
        write_partition(root, "script_orders", day, [order_row(*r) for r in rows])
    for day, rows in batches.items():
        write_partition(
            root,
            "order_batches",
            day,
            [
                {"execute_uuid": t, "batch_index": b, "total_instances": n, "instances_ingested": n}
                for t, b, n in rows
            ],
        )


@pytest.fixture(scope="module")
def duckdb_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("warehouse")
    write_dataset(root)
    result = build_warehouse(warehouse=str(root), duckdb_path=str(root / "coc.duckdb"))
    assert result.rows == {"execution_instances": 17, "script_orders": 5, "order_batches": 6}
    return result.duckdb_path


def test_failure_rates_daily(duckdb_path: str) -> None:
    rows = query(duckdb_path, "SELECT * FROM failure_rates_daily")
    got = {r[:5]: r[5:] for r in rows}
    assert len(got) == len(rows)
    assert got == {
        # t1 on r1: FINISHED + ROLLBACKED, both counted, neither failed
        (D1, "cn-north-4", "cn-north-4a", "shop", "restart-nginx"): (2, 0, 0.0),
        # t1 on r2: ABNORMAL counted, CANCELED not
        (D1, "cn-north-4", "cn-north-4b", "shop", "restart-nginx"): (1, 1, 1.0),
        (D1, "ap-southeast-1", None, None, "restart-nginx"): (1, 1, 1.0),
        (D1, "cn-north-4", "cn-north-4a", "shop", "patch-kernel"): (1, 0, 0.0),
        (D1, "cn-north-4", "cn-north-4b", "shop", "patch-kernel"): (1, 1, 1.0),
        (D1, "ap-southeast-1", None, None, "patch-kernel"): (1, 1, 1.0),
        (D1, None, None, None, "patch-kernel"): (1, 0, 0.0),  # the instance without a host
        # t3 on r1: two ABNORMAL, one FINISHED
        (D2, "cn-north-4", "cn-north-4a", "shop", "restart-nginx"): (3, 2, 2 / 3),
        (D2, "cn-north-4", "cn-north-4b", "shop", "restart-nginx"): (1, 1, 1.0),
        # t3 on r3: FINISHED counted, CANCELED not
        (D2, "ap-southeast-1", None, None, "restart-nginx"): (1, 0, 0.0),
        # t4 (no script name): READY and PROCESSING have no outcome yet
        (D2, None, None, None, None): (0, 0, None),
        (D2, "cn-north-4", "cn-north-4b", "shop", None): (0, 0, None),
    }


def test_host_failures(duckdb_path: str) -> None:
    rows = query(duckdb_path, "SELECT * FROM host_failures")
    got = {r[0]: r[1:] for r in rows}
    assert len(got) == len(rows)
    assert got == {
        # r1: 101 F, 104 R, 201 F, 301 A, 305 A, 306 F counted (401 READY not); tickets t1-t3.
        # Latest non-NULL name: 401 has none, 305 and 306 tie on created_at, 306 wins on id.
        "r1": (
            "web-1b",
            "cn-north-4",
            "cn-north-4a",
            3,
            6,
            2,
            1 / 3,
            at(D2, "09:05:02"),  # 305 finished
        ),
        # r2: 102 A, 204 A, 302 A counted (105 CANCELED, 402 PROCESSING not); renamed web-2.
        # 302 has no finished_at, so its created_at is its failure time, the latest one.
        "r2": ("web-2", "cn-north-4", "cn-north-4b", 3, 3, 3, 1.0, at(D2, "09:00:00")),
        # r3: 103 A, 202 A, 303 F counted (304 CANCELED not); its zone was never sent.
        "r3": ("db-1", "ap-southeast-1", None, 3, 3, 2, 2 / 3, at(D1, "11:00:50")),
        None: (None, None, None, 1, 1, 0, 0.0, None),
    }


def test_failure_messages(duckdb_path: str) -> None:
    rows = query(duckdb_path, "SELECT * FROM failure_messages")
    got = {r[0]: r[1:] for r in rows}
    assert len(got) == len(rows)
    assert got == {
        # 102 (t1, r2) and 103 (t1, r3)
        "Connection to <ip>:<n> refused after <n> retries": (
            2,
            1,
            2,
            at(D1, "10:00:20"),
            at(D1, "10:01:30"),
            CONN_B,
        ),
        # 202 (t2, r3) and 301 (t3, r1)
        "Task <uuid> failed: file <path> not found": (
            2,
            2,
            2,
            at(D1, "11:00:50"),
            at(D2, "09:00:07"),
            TASK_B,
        ),
        # 302 (t3, r2, failed at its created_at) and 305 (t3, r1); the raw message is kept
        "exit code <n>": (2, 1, 2, at(D2, "09:00:00"), at(D2, "09:05:02"), EXIT_B),
        # 204 (t2, r2) sent no message
        None: (1, 1, 1, at(D1, "11:00:30"), at(D1, "11:00:30"), None),
    }


def test_ticket_outcomes(duckdb_path: str) -> None:
    rows = query(duckdb_path, "SELECT * FROM ticket_outcomes")
    got = {r[1]: r for r in rows}
    assert len(got) == len(rows)
    assert got == {
        # 101 F, 102 A, 103 A, 104 R counted; 105 CANCELED not
        "t1": (D1, "t1", "restart-nginx", "alice", "ABNORMAL", 2, 4, 2, 0.5, 100_000),
        # 201 F, 202 A, 203 F, 204 A
        "t2": (D1, "t2", "patch-kernel", "bob", "FINISHED", 1, 4, 2, 0.5, 60_000),
        # 301 A, 302 A, 303 F, 305 A, 306 F counted; 304 CANCELED not
        "t3": (D2, "t3", "restart-nginx", "alice", "CANCELED", 1, 5, 3, 0.6, 600_000),
        # READY and PROCESSING only
        "t4": (D2, "t4", None, None, "PROCESSING", 2, 0, 0, None, None),
        # no batches, no instances
        "t5": (D2, "t5", "patch-kernel", "carol", "FINISHED", 0, 0, 0, None, 1_000),
    }


def test_script_durations_daily(duckdb_path: str) -> None:
    rows = query(duckdb_path, "SELECT * FROM script_durations_daily")
    got = {r[:2]: r[2:] for r in rows}
    assert len(got) == len(rows)
    # quantile_cont over n sorted values: position (n - 1) * q, interpolated linearly.
    # With n = 4: p50 at 1.5 (halfway between 2nd and 3rd), p95 at 2.85.
    expected = {
        # 10000, 20000, 30000, 40000 (105 CANCELED has no duration and does not count)
        (D1, "restart-nginx"): (4, 25_000.0, 30_000 + 0.85 * 10_000),
        # 5000, 15000, 30000, 50000
        (D1, "patch-kernel"): (4, 22_500.0, 30_000 + 0.85 * 20_000),
        # 2000, 4000, 7000, 9000 (302 has no duration; 304 CANCELED does not count)
        (D2, "restart-nginx"): (4, 5_500.0, 7_000 + 0.85 * 2_000),
        # t4 has no outcome yet: no row
    }
    assert got.keys() == expected.keys()
    for key, (instances, p50, p95) in expected.items():
        assert got[key][0] == instances
        assert got[key][1:] == (pytest.approx(p50), pytest.approx(p95))


def test_marts_keep_the_contract_columns(duckdb_path: str) -> None:
    con = connect(duckdb_path)
    try:
        columns = {
            name: con.execute(f"SELECT * FROM {name} LIMIT 0").fetchdf().columns.tolist()
            for name in (
                "failure_rates_daily",
                "host_failures",
                "failure_messages",
                "ticket_outcomes",
                "script_durations_daily",
            )
        }
    finally:
        con.close()
    assert columns == {
        "failure_rates_daily": [
            "dt",
            "region_id",
            "zone_id",
            "application",
            "script_name",
            "instances",
            "failed",
            "failure_rate",
        ],
        "host_failures": [
            "resource_id",
            "host_name",
            "region_id",
            "zone_id",
            "tickets",
            "instances",
            "failed",
            "failure_rate",
            "last_failed_at",
        ],
        "failure_messages": [
            "message_pattern",
            "instances",
            "tickets",
            "hosts",
            "first_seen",
            "last_seen",
            "example_message",
        ],
        "ticket_outcomes": [
            "dt",
            "execute_uuid",
            "script_name",
            "creator",
            "status",
            "batches",
            "instances",
            "failed",
            "failure_rate",
            "duration_ms",
        ],
        "script_durations_daily": [
            "dt",
            "script_name",
            "instances",
            "p50_duration_ms",
            "p95_duration_ms",
        ],
    }


MESSAGE_PATTERNS = {
    "unreachable fe80::1ff:fe23:4567:890a": "unreachable <ip>",
    "no route to 2001:0db8:85a3:0000:0000:8a2e:0370:7334": "no route to <ip>",
    "GET https://obs.example.com/b/k?x=1 failed": "GET <url> failed",
    "cannot open C:\\Users\\x1\\a.txt": "cannot open <path>",
    "config (path=/etc/app/x.conf) unreadable": "config (path=<path>) unreadable",
    "instance i-0abc12345def6789 gone, code 0x1F": "instance i-<hex> gone, code <hex>",
    "timeout at 12:30:45 after 20261125123456 ms": "timeout at <n>:<n>:<n> after <n> ms",
    "std::vector overflow on node-07 (ec2)": "std::vector overflow on node-<n> (ec<n>)",
    "read/write error": "read/write error",
    "z" * 298 + " 1": "z" * 298 + " <",  # masked first, then cut to 300 characters
    "y" * 310: "y" * 300,
    "": "",
}


def test_failure_messages_masks_ids_addresses_paths_and_numbers(tmp_path: Path) -> None:
    instances = {
        D1: [
            ("t1", 1, i, WEB1, "ABNORMAL", message, at(D1, "10:00:00"), at(D1, "10:00:01"))
            for i, message in enumerate(MESSAGE_PATTERNS)
        ]
    }
    write_dataset(tmp_path, instances=instances, orders={}, batches={})
    result = build_warehouse(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "coc.duckdb"))
    rows = query(
        result.duckdb_path, "SELECT example_message, message_pattern FROM failure_messages"
    )
    assert dict(rows) == MESSAGE_PATTERNS


def test_failure_report_by_region(duckdb_path: str) -> None:
    rows = failure_report(duckdb_path, days=7, by="region")
    # Newest day first, keys in order with NULL last; sums of failure_rates_daily's rows.
    assert rows == [
        ReportRow(D2, "ap-southeast-1", 1, 0, 0.0),
        ReportRow(D2, "cn-north-4", 4, 3, 0.75),
        ReportRow(D2, None, 0, 0, None),
        ReportRow(D1, "ap-southeast-1", 2, 2, 1.0),
        ReportRow(D1, "cn-north-4", 5, 2, 0.4),
        ReportRow(D1, None, 1, 0, 0.0),
    ]


def test_failure_report_window_and_keys(duckdb_path: str) -> None:
    assert failure_report(duckdb_path, days=1, by="script") == [
        ReportRow(D2, "restart-nginx", 5, 3, 0.6),
        ReportRow(D2, None, 0, 0, None),
    ]
    assert failure_report(duckdb_path, days=1, by="zone", until=D1) == [
        ReportRow(D1, "cn-north-4a", 2 + 1, 0, 0.0),
        ReportRow(D1, "cn-north-4b", 2, 2, 1.0),
        ReportRow(D1, None, 3, 2, 2 / 3),
    ]
    assert failure_report(duckdb_path, days=3, by="application", until=date(2026, 11, 20)) == []
    with pytest.raises(ValueError, match="region, zone, application, script"):
        failure_report(duckdb_path, by="host")


def test_format_report() -> None:
    rows = [
        ReportRow(D2, "cn-north-4", 1234, 56, 56 / 1234),
        ReportRow(D2, None, 0, 0, None),
        ReportRow(D1, "ap-southeast-1", 3, 1, 1 / 3),
    ]
    assert format_report(rows, by="region").splitlines() == [
        "Failure rate by region, 2026-11-24 to 2026-11-25",
        "(failed = ABNORMAL; instances = FINISHED, ABNORMAL or ROLLBACKED; CANCELED not counted)",
        "",
        "day         region          instances  failed  failure rate",
        "----------  --------------  ---------  ------  ------------",
        "2026-11-25  cn-north-4          1,234      56          4.5%",
        "2026-11-25  (none)                  0       0             -",
        "2026-11-24  ap-southeast-1          3       1         33.3%",
        "----------  --------------  ---------  ------  ------------",
        "total                           1,237      57          4.6%",
    ]
    assert "no instances" in format_report([], by="zone")


STATUSES = ("READY", "PROCESSING", "ABNORMAL", "CANCELED", "FINISHED", "ROLLBACKED")


def test_the_failure_rule_is_callable_from_the_built_file(duckdb_path: str) -> None:
    """The macros stay in coc.duckdb (read-only clients can call them) and say the rule."""
    rows = query(
        duckdb_path,
        "SELECT s, counted(s), failed(s) FROM unnest(["
        + ", ".join(f"'{s}'" for s in STATUSES)
        + "]) AS t(s) ORDER BY s",
    )
    assert {s: (c, f) for s, c, f in rows} == {
        "ABNORMAL": (True, True),
        "CANCELED": (False, False),
        "FINISHED": (True, False),
        "PROCESSING": (False, False),
        "READY": (False, False),
        "ROLLBACKED": (True, False),
    }
    assert query(duckdb_path, "SELECT failure_rate(1, 4), failure_rate(0, 0)") == [(0.25, None)]


def test_the_failure_rule_has_one_home() -> None:
    """No mart and no report query restates the statuses: they call the macros."""
    sql_dir = Path(__file__).parents[2] / "warehouse" / "sql"
    sources = [*sql_dir.glob("marts/*.sql"), Path(__file__).parents[2] / "warehouse/report.py"]
    assert len(sources) >= 6
    restating = [
        f"{path.name}: {status}"
        for path in sources
        for status in STATUSES
        if f"'{status}'" in path.read_text(encoding="utf-8")
    ]
    assert restating == []
    macros = (sql_dir / "macros.sql").read_text(encoding="utf-8")
    assert all(f"'{s}'" in macros for s in ("ABNORMAL", "FINISHED", "ROLLBACKED"))
