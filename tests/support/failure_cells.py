"""Hand-built daily counts for the failure-shift and alert-episode tests: ``Cell``s written
as Parquet (``write_cells``) and the failure_shifts mart they build (``shifts``); a key
(``ZONE``) whose failure rate shifts against quiet neighbours (``persistent``, ``SHIFT``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.lake import commit_partition
from warehouse import build_warehouse, connect

DAY0 = date(2026, 11, 1)


@dataclass(frozen=True)
class Cell:
    """``instances`` runs of ``script`` ``version`` in ``zone`` on day ``day`` (0 = DAY0)."""

    day: int
    zone: str
    instances: int
    failed: int
    script: str = "deploy"
    version: str = "v1"
    message: str = "Connection to 10.0.0.12:22 refused after 3 retries"
    canceled: int = 0


def write_cells(root: Path, cells: list[Cell]) -> None:
    instances: dict[date, list[dict]] = {}
    orders: dict[date, list[dict]] = {}
    for n, cell in enumerate(cells):
        day = DAY0 + timedelta(days=cell.day)
        created = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
        ticket = f"t{n:04d}"
        statuses = (
            ["ABNORMAL"] * cell.failed
            + ["FINISHED"] * (cell.instances - cell.failed)
            + ["CANCELED"] * cell.canceled
        )
        instances.setdefault(day, []).extend(
            {
                "execute_uuid": ticket,
                "batch_index": 1,
                "instance_id": i,
                "status": status,
                "message": cell.message.replace("10.0.0.12", f"10.0.{i % 250}.{n % 250}")
                if status == "ABNORMAL"
                else "ok",
                "created_at": created,
                "finished_at": created + timedelta(seconds=5),
                "resource_id": f"{cell.zone}-host-{i % 40}",
                "region_id": cell.zone[:-1],
                "zone_id": cell.zone,
                "application": "shop",
            }
            for i, status in enumerate(statuses)
        )
        orders.setdefault(day, []).append(
            {
                "execute_uuid": ticket,
                "order_id": n,
                "status": "FINISHED",
                "created_at": created,
                "script_name": cell.script,
                "script_version_name": cell.version,
            }
        )
    for table, days in (("execution_instances", instances), ("script_orders", orders)):
        for day, rows in days.items():
            commit_partition(root, table, day, rows, "p")


def shifts(tmp_path: Path, cells: list[Cell]) -> dict[tuple[int, str, str | None], dict]:
    """Build the warehouse of ``cells``; failure_shifts by (day number, dimension, key)."""
    write_cells(tmp_path, cells)
    built = build_warehouse(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "coc.duckdb"))
    con = connect(built.duckdb_path)
    try:
        cursor = con.execute("SELECT * FROM failure_shifts")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()
    return {((r["dt"] - DAY0).days, r["dimension"], r["key"]): r for r in rows}


def steady(days: range, zone: str, instances: int, failed: int, **kw: Any) -> list[Cell]:
    return [Cell(day, zone, instances, failed, **kw) for day in days]


#: a quiet neighbour on every day, so that each day has several keys to test
QUIET = steady(range(9), "cn-north-4a", 2000, 20)


ZONE = "cn-east-3b"


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def persistent(rates: dict[int, int], days: int = 18) -> list[Cell]:
    """QUIET-like neighbours every day; ZONE at 10 of 1,000 except on ``rates``' days."""
    quiet = [Cell(d, z, n, f) for d in range(days) for z, n, f in NEIGHBOURS]
    return quiet + [Cell(d, ZONE, 1000, rates.get(d, 10)) for d in range(days) if d not in GAPS]


NEIGHBOURS = [("cn-north-4a", 2000, 20), ("cn-north-4b", 1500, 30), ("cn-east-3a", 800, 8)]
#: days without a run in ZONE
GAPS = {13}
#: ZONE at 10% from day 8 to day 14 (none on day 13), back to 1% on day 15
SHIFT = {d: 100 for d in range(8, 15)}
