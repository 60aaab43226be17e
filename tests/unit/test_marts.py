"""Every mart against a small hand-checked dataset, asserting exact values.

Two days, five tickets, seventeen instances on three hosts and one instance without a host,
every instance status, NULL group keys, and failure messages that differ only in numbers,
IP addresses, UUIDs, paths and whitespace. The expected rows below were worked out by hand
from the tables in this file (see the comments), not by running the marts' SQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tests.support.duck import query
from tests.support.lake import commit_partition
from warehouse import build_warehouse, connect, failure_report, format_report
from warehouse.report import ReportRow

D1 = date(2026, 11, 24)
D2 = date(2026, 11, 25)


def at(day: date, hms: str) -> datetime:
    h, m, s = (int(x) for x in hms.split(":"))
    return datetime(day.year, day.month, day.day, h, m, s, tzinfo=UTC)


# Hosts: resource_id -> the target columns of an instance on it.
WEB1 = {
    "resource_id": "r1",
    "host_name": "web-1",
    "region_id": "cn-north-4",
    "zone_id": "cn-north-4a",
    "application": "shop",
    "fixed_ip": "10.0.0.11",
}
WEB1B = {**WEB1, "host_name": "web-1b"}  # r1 renamed on D2
WEB1_NO_PROPS = {"resource_id": "r1"}  # r1 seen once without its properties
WEB2_OLD = {
    "resource_id": "r2",
    "host_name": "old-web-2",
    "region_id": "cn-north-4",
    "zone_id": "cn-north-4b",
    "application": "shop",
}
WEB2 = {**WEB2_OLD, "host_name": "web-2"}
DB1 = {"resource_id": "r3", "host_name": "db-1", "region_id": "ap-southeast-1"}
NO_HOST: dict = {}

CONN_A = "Connection to 10.0.0.12:22 refused after 3 retries"
CONN_B = "Connection to 192.168.1.7:22 refused after 5 retries"
TASK_A = "Task 3f2b8c1e-9a7d-4e6f-8b1a-2c3d4e5f6a7b failed: file /var/log/app/run-17.log not found"
TASK_B = "Task 0a1b2c3d-0000-4000-8000-00000000abcd failed: file /opt/app/logs/x.log not found"
EXIT_A = "exit code 127"
EXIT_B = "  exit   code 1 "

# (ticket, batch, id, host, status, message, created, finished)    duration_ms
INSTANCES = {
    D1: [
        ("t1", 1, 101, WEB1, "FINISHED", "ok", at(D1, "10:00:00"), at(D1, "10:00:10")),  # 10000
        ("t1", 1, 102, WEB2_OLD, "ABNORMAL", CONN_A, at(D1, "10:00:00"), at(D1, "10:00:20")),
        ("t1", 2, 103, DB1, "ABNORMAL", CONN_B, at(D1, "10:01:00"), at(D1, "10:01:30")),  # 30000
        ("t1", 2, 104, WEB1, "ROLLBACKED", "undone", at(D1, "10:01:00"), at(D1, "10:01:40")),
        ("t1", 2, 105, WEB2_OLD, "CANCELED", None, at(D1, "10:01:00"), None),  # null
        ("t2", 1, 201, WEB1, "FINISHED", "ok", at(D1, "11:00:00"), at(D1, "11:00:05")),  # 5000
        ("t2", 1, 202, DB1, "ABNORMAL", TASK_A, at(D1, "11:00:00"), at(D1, "11:00:50")),  # 50000
        ("t2", 1, 203, NO_HOST, "FINISHED", "ok", at(D1, "11:00:00"), at(D1, "11:00:15")),
        ("t2", 1, 204, WEB2_OLD, "ABNORMAL", None, at(D1, "11:00:00"), at(D1, "11:00:30")),
    ],
    D2: [
        ("t3", 1, 301, WEB1B, "ABNORMAL", TASK_B, at(D2, "09:00:00"), at(D2, "09:00:07")),  # 7000
        ("t3", 1, 302, WEB2, "ABNORMAL", EXIT_A, at(D2, "09:00:00"), None),  # null
        ("t3", 1, 303, DB1, "FINISHED", "ok", at(D2, "09:00:00"), at(D2, "09:00:09")),  # 9000
        ("t3", 1, 304, DB1, "CANCELED", None, at(D2, "09:00:00"), at(D2, "09:00:01")),  # 1000
        ("t3", 1, 305, WEB1B, "ABNORMAL", EXIT_B, at(D2, "09:05:00"), at(D2, "09:05:02")),
        ("t3", 1, 306, WEB1B, "FINISHED", "ok", at(D2, "09:05:00"), at(D2, "09:05:04")),  # 4000
        ("t4", 1, 401, WEB1_NO_PROPS, "READY", None, at(D2, "12:00:00"), None),
        ("t4", 1, 402, WEB2, "PROCESSING", None, at(D2, "12:00:00"), None),
    ],
}

# (ticket, script_name, creator, status, created, finished)
ORDERS = {
    D1: [
        ("t1", "restart-nginx", "alice", "ABNORMAL", at(D1, "10:00:00"), at(D1, "10:01:40")),
        ("t2", "patch-kernel", "bob", "FINISHED", at(D1, "11:00:00"), at(D1, "11:01:00")),
    ],
    D2: [
        ("t3", "restart-nginx", "alice", "CANCELED", at(D2, "09:00:00"), at(D2, "09:10:00")),
        ("t4", None, None, "PROCESSING", at(D2, "12:00:00"), None),
        ("t5", "patch-kernel", "carol", "FINISHED", at(D2, "13:00:00"), at(D2, "13:00:01")),
    ],
}

# (ticket, batch_index, total_instances); t5 has no batches at all.
BATCHES = {
    D1: [("t1", 1, 2), ("t1", 2, 3), ("t2", 1, 4)],
    D2: [("t3", 1, 6), ("t4", 1, 2), ("t4", 2, 0)],
}


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds() * 1000)


def _instance_row(ticket, batch, iid, host, status, message, created, finished) -> dict:
    return {
        "execute_uuid": ticket,
        "batch_index": batch,
        "instance_id": iid,
        "status": status,
        "message": message,
        "created_at": created,
        "finished_at": finished,
        "execute_costs": _ms(created, finished),
        "duration_ms": _ms(created, finished),
        "provider": "ECS" if host else None,
        "resource_type": "CLOUDSERVER" if host else None,
        "custom_attributes": [("env", "prod")] if host else None,
        **host,
    }


def _order_row(ticket, script, creator, status, created, finished) -> dict:
    return {
        "execute_uuid": ticket,
        "order_id": int(ticket[1:]),
        "order_name": f"order {ticket}",
        "creator": creator,
        "status": status,
        "created_at": created,
        "finished_at": finished,
        "duration_ms": _ms(created, finished),
        "script_name": script,
    }


def write_partition(root: Path, table: str, day: date, rows: list[dict]) -> None:
    commit_partition(root, table, day, rows)


def write_dataset(root: Path, instances=INSTANCES, orders=ORDERS, batches=BATCHES) -> None:
    for day, rows in instances.items():
        write_partition(root, "execution_instances", day, [_instance_row(*r) for r in rows])
    for day, rows in orders.items():
        write_partition(root, "script_orders", day, [_order_row(*r) for r in rows])
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
