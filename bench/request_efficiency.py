"""1. Request efficiency: requests the product made / the minimal requests of the day.

The simulator runs in a thread here (its request counters are read directly); the product is
the plain function path, unthrottled. A clean day is the default ``SimConfig``; the tricky
ones add hostile ticket ids (``/ ? # % ..`` and spaces) and a server that clamps every page
(list and batch) to 20 records whatever ``limit`` asked, so the minimum is computed with
limits of 20 — once for a UTC day, once for a day in Asia/Shanghai (whose boundaries cut
through UTC days and hit the tickets the simulator plants 1 ms around local midnight).
Batches whose size is an exact multiple of the page size (no short last page) occur in each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.core import Row, Scale, Section, Spread, Target, scratch_dir
from bench.day import DAY, NOW, BenchDay
from coc_simulator.data import Dataset, SimConfig
from coc_simulator.server import SimulatorServer
from pipelines.coc.settings import DEFAULT_CONCURRENCY, ClientSettings
from pipelines.ingest import ingest_days
from pipelines.settings import WarehouseSettings

PAGE_CLAMP = 20


@dataclass(frozen=True, kw_only=True)
class Case:
    name: str
    hostile_uuids: bool = False
    page_clamp: int | None = None
    timezone: str = "UTC"


CASES = (
    Case(name="clean day"),
    Case(name="tricky day (clamp 20, hostile ids)", hostile_uuids=True, page_clamp=PAGE_CLAMP),
    Case(
        name="tricky day, Asia/Shanghai",
        hostile_uuids=True,
        page_clamp=PAGE_CLAMP,
        timezone="Asia/Shanghai",
    ),
)


def _run_case(case: Case, scale: Scale, root: Path) -> dict[str, object]:
    dataset = Dataset(SimConfig(now=NOW, hostile_uuids=case.hostile_uuids))
    day = BenchDay(dataset=dataset, day=DAY, tz=ZoneInfo(case.timezone))
    limit = case.page_clamp or 50
    minimal = day.minimal_requests(list_limit=limit, page_limit=limit)
    expected_rows = day.instances
    served, made, rows = [], [], []
    with SimulatorServer(dataset=dataset) as sim:
        if case.page_clamp is not None:
            sim.faults.update(page_clamp=case.page_clamp)
        settings = ClientSettings(endpoint=sim.url, max_rps=None, concurrency=DEFAULT_CONCURRENCY)
        for run in range(scale.repeats):
            sim.stats.reset()
            warehouse = root / f"{case.timezone.replace('/', '_')}-{case.hostile_uuids}-{run}"
            result = ingest_days(
                settings,
                WarehouseSettings(
                    warehouse=str(warehouse),
                    duckdb_path=str(warehouse / "coc.duckdb"),
                    timezone=case.timezone,
                ),
                [DAY],
            )[0]
            served.append(sim.stats.total)
            made.append(result.http.requests)
            rows.append(result.rows)
    return {
        "minimal": minimal,
        "served": served,
        "client_counted": made,
        "rows": rows,
        "expected_rows": expected_rows,
        "tickets": len(day.tickets),
        "batches_at_page_multiples": day.batches_at_page_multiples(limit),
        "page_limit": limit,
    }


def measure(scale: Scale) -> Section:
    section = Section(name="request_efficiency", title="1 request efficiency")
    with scratch_dir("requests") as root:
        for case in CASES:
            found = _run_case(case, scale, root)
            minimal = found["minimal"]
            assert isinstance(minimal, int)
            served = found["served"]
            assert isinstance(served, list)
            rows = found["rows"]
            assert isinstance(rows, list)
            complete = all(r == found["expected_rows"] for r in rows)
            section.detail[case.name] = found
            section.rows.append(
                Row(
                    metric=f"{case.name}: requests / minimal",
                    spread=Spread.of([s / minimal for s in served]),
                    unit="×",
                    target=Target("=", 1.0),
                    passed_override=None if complete else False,
                    note=(
                        f"{served[len(served) // 2]} served / {minimal} minimal, "
                        f"{found['batches_at_page_multiples']} batches at multiples of "
                        f"{found['page_limit']}" + ("" if complete else "; ROWS MISSING OR EXTRA")
                    ),
                )
            )
    return section
