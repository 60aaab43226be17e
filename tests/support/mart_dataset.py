"""A small hand-checked dataset of the marts' tests: two days, five tickets, seventeen
instances on three hosts and one instance without a host, every instance status, NULL group
keys, and failure messages that differ only in numbers, IP addresses, UUIDs, paths and
whitespace (tests/unit/test_marts.py works the expected rows out by hand from it)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from tests.support.lake import commit_partition

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


def instance_row(ticket, batch, iid, host, status, message, created, finished) -> dict:
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


def order_row(ticket, script, creator, status, created, finished) -> dict:
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
