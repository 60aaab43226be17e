"""Real Dagster materializations against the simulator over loopback HTTP, read back through
DuckDB and compared with the simulator's own truth."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from assets.ingestion import build_ingestion_asset
from assets.partitions import daily_partitions
from assets.resources import CocApiResource, WarehouseResource
from assets.warehouse import build_warehouse_asset
from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from pipelines.extract.walk import day_window
from pipelines.lake.tables import Lake
from warehouse.build import MARTS_DIR

AK = "PIPELINETESTAK"
SK = "pipeline-test-secret-key-0123456789"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = date(2026, 11, 18)


pytestmark = pytest.mark.simulator(SimConfig(seed=11, days=5, now=NOW), ak=AK, sk=SK)


def _run(
    sim: SimulatorServer,
    root: Path,
    day: date,
    *,
    timezone: str = "UTC",
    run_config: dict[str, Any] | None = None,
    **coc: Any,
):
    partitions = daily_partitions(timezone)
    resources = {
        "coc": CocApiResource(endpoint=sim.url, ak=AK, sk=SK, max_rps="0", concurrency="8", **coc),
        "warehouse": WarehouseResource(warehouse=str(root), timezone=timezone),
    }
    return materialize(
        [build_ingestion_asset(partitions), build_warehouse_asset(partitions)],
        partition_key=day.isoformat(),
        resources=resources,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config=run_config,
    )


def _rows(root: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(root / "coc.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _expected_instance(uuid: str, batch: int, item: dict) -> tuple:
    """The contract's mapping, written out independently of pipelines/transform/flatten.py."""
    target = item.get("target_instance") or {}
    props = target.get("properties") or {}
    attrs = target.get("custom_attributes")
    created, finished = item.get("gmt_created"), item.get("gmt_finished")
    return (
        uuid,
        batch,
        item["id"],
        item.get("status"),
        item.get("message"),
        created,
        finished,
        item.get("execute_costs"),
        None if created is None or finished is None else finished - created,
        target.get("resource_id"),
        target.get("provider"),
        target.get("type"),
        target.get("agent_sn"),
        target.get("agent_status"),
        props.get("host_name"),
        props.get("fixed_ip"),
        props.get("floating_ip"),
        props.get("zone_id"),
        props.get("application"),
        props.get("group"),
        props.get("region_id") if props.get("region_id") is not None else target.get("region_id"),
        props.get("project_id")
        if props.get("project_id") is not None
        else target.get("project_id"),
        None if attrs is None else sorted((a["key"], a["value"]) for a in attrs),
    )


INSTANCE_SQL = """
SELECT execute_uuid, batch_index, instance_id, status, message,
       epoch_ms(created_at), epoch_ms(finished_at), execute_costs, duration_ms,
       resource_id, provider, resource_type, agent_sn, agent_status, host_name, fixed_ip,
       floating_ip, zone_id, application, group_name, region_id, project_id,
       custom_attributes
FROM execution_instances WHERE dt = DATE '{day}'
ORDER BY execute_uuid, batch_index, instance_id
"""


def _landed_instances(root: Path, day: date) -> list[tuple]:
    rows = _rows(root, INSTANCE_SQL.format(day=day.isoformat()))
    out = []
    for row in rows:
        attrs = row[-1]
        if attrs is not None:
            attrs = (
                sorted(zip(attrs["key"], attrs["value"], strict=True))
                if isinstance(attrs, dict) and "key" in attrs
                else sorted(attrs.items())
            )
        out.append((*row[:-1], attrs))
    return out


def _truth(sim: SimulatorServer, day: date, tz: str = "UTC") -> list[tuple]:
    from zoneinfo import ZoneInfo

    start, end = day_window(day, ZoneInfo(tz))
    expected = []
    for ticket in sim.dataset.tickets_in_window(start, end, now=NOW):
        for batch in ticket.batches:
            for item in sim.dataset.instances(ticket, batch.index, now=NOW):
                expected.append(_expected_instance(ticket.execute_uuid, batch.index, item))
    return sorted(expected, key=lambda r: (r[0], r[1], r[2]))


def _fresh(sim: SimulatorServer) -> None:
    """The simulator as ``_clean_sim`` leaves it, for a module-scoped run."""
    sim.faults.reset()
    sim.set_now(NOW)
    sim.stats.reset()


@dataclass(frozen=True)
class DayRun:
    """``DAY`` materialized once into an empty warehouse, on a fault-free simulator."""

    root: Path
    result: Any
    requests: int


@pytest.fixture(scope="module")
def day_run(module_sim: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> DayRun:
    """Read by the tests below that only look at a clean run's outcome (never write to it)."""
    root = tmp_path_factory.mktemp("day")
    _fresh(module_sim)
    result = _run(module_sim, root, DAY)
    return DayRun(root, result, module_sim.stats.total)


def test_a_day_lands_exactly_as_the_api_serves_it(sim: SimulatorServer, day_run: DayRun) -> None:
    result, tmp_path = day_run.result, day_run.root
    assert result.success
    start, end = day_window(DAY, UTC)  # type: ignore[arg-type]

    # exactly the minimal number of requests
    minimal = sim.dataset.minimal_requests(
        start, end, list_limit=50, page_limit=50, now=NOW, query_end_ms=end
    )
    assert day_run.requests == minimal

    # every instance, every column, every value, as sent; nothing more
    expected = _truth(sim, DAY)
    landed = _landed_instances(tmp_path, DAY)
    assert len(expected) > 500
    assert landed == expected

    # per-batch counts equal the simulator's totals
    tickets = sim.dataset.tickets_in_window(start, end, now=NOW)
    want = {(t.execute_uuid, b.index): b.size for t in tickets for b in t.batches}
    got = dict(
        ((u, b), (total, ingested))
        for u, b, total, ingested in _rows(
            tmp_path,
            f"SELECT execute_uuid, batch_index, total_instances, instances_ingested "
            f"FROM order_batches WHERE dt = DATE '{DAY}'",
        )
    )
    assert {k: v[0] for k, v in got.items()} == want
    assert {k: v[1] for k, v in got.items()} == want

    # tickets: one row each, values from the detail and the list
    orders = _rows(
        tmp_path,
        f"SELECT execute_uuid, order_id, creator, status, epoch_ms(created_at), script_name, "
        f"batch_count, total_instances FROM script_orders WHERE dt = DATE '{DAY}' "
        f"ORDER BY execute_uuid",
    )
    expected_orders = []
    for t in tickets:
        detail = sim.dataset.detail(t, now=NOW)
        expected_orders.append(
            (
                t.execute_uuid,
                t.order_id,
                detail["creator"],
                detail["status"],
                detail["gmt_created"],
                detail["properties"]["script_name"],
                len(t.batches),
                t.total_instances,
            )
        )
    assert orders == sorted(expected_orders)

    # all asset checks ran and passed: the day's six (schema drift included), and the
    # warehouse's failure-shift warning (one day of data: nothing to compare with, so no shift)
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 7 and all(c.passed for c in checks), [c.description for c in checks]


def test_types_follow_the_contract(day_run: DayRun) -> None:
    import pyarrow.parquet as pq

    from pipelines.transform.schemas import TABLES

    tmp_path = day_run.root
    assert day_run.result.success
    for table, schema in TABLES.items():
        files = list((tmp_path / table / f"dt={DAY}").glob("*.parquet"))
        assert len(files) == 1
        assert pq.read_schema(files[0]).remove_metadata() == schema.remove_metadata()
    types = dict(
        _rows(
            tmp_path,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'execution_instances'",
        )
    )
    assert types["dt"] == "DATE"
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["batch_index"] == "INTEGER"
    assert types["custom_attributes"] == "MAP(VARCHAR, VARCHAR)"
    nulls_as_text = _rows(
        tmp_path,
        "SELECT count(*) FROM execution_instances WHERE message IN ('None', 'null') "
        "OR host_name IN ('None', 'null') OR agent_status IN ('None', 'null')",
    )
    assert nulls_as_text == [(0,)]


def test_the_warehouse_step_reports_every_marts_rows(day_run: DayRun) -> None:
    """The marts are not materialized one by one (assets of their own downstream of
    ``warehouse``, see test_definitions): the warehouse's materialization counts their rows."""
    [built] = [
        m
        for m in day_run.result.asset_materializations_for_node("coc_warehouse")
        if m.asset_key.to_user_string() == "warehouse"
    ]
    marts = sorted(path.stem for path in MARTS_DIR.glob("*.sql"))
    reported = {
        key.removeprefix("mart_rows_"): value.value
        for key, value in built.metadata.items()
        if key.startswith("mart_rows_")
    }
    counted = {m: _rows(day_run.root, f"SELECT count(*) FROM {m}")[0][0] for m in marts}
    assert reported == counted
    assert counted["failure_rates_daily"] > 0 and counted["ticket_outcomes"] > 0


def _digest(root: Path, day: date) -> dict[str, str]:
    out = {}
    for table in ("execution_instances", "script_orders", "order_batches"):
        rows = _rows(root, f"SELECT * FROM {table} WHERE dt = DATE '{day}' ORDER BY ALL")
        out[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


def _parquet(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.glob("*/dt=*/*.parquet")}


def _build_metadata(result: Any) -> str:
    [built] = [
        m
        for m in result.asset_materializations_for_node("coc_warehouse")
        if m.asset_key.to_user_string() == "warehouse"
    ]
    return built.metadata["build"].value


def test_materializing_again_replaces_the_day_whole_and_updates_or_rebuilds_the_warehouse(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    """The runs a partition sees: the day before, the day, the day again, the day again with
    a full warehouse rebuild asked."""
    other = DAY - timedelta(days=1)
    first = _run(sim, tmp_path, other)
    assert first.success
    assert _build_metadata(first) == "full rebuild (no previous file)"
    other_files = sorted((tmp_path / "execution_instances").glob(f"dt={other}/*"))
    second = _run(sim, tmp_path, DAY)
    assert second.success
    # the warehouse step updates the run's day
    assert _build_metadata(second) == f"days {DAY.isoformat()}"
    by_day = "SELECT dt, sum(instances) FROM failure_rates_daily GROUP BY dt ORDER BY dt"
    assert [d for d, _ in _rows(tmp_path, by_day)] == [other, DAY]
    incremental = _rows(tmp_path, "SELECT * FROM host_failures ORDER BY ALL")
    first_digest = _digest(tmp_path, DAY)

    # materializing again replaces the day whole
    assert _run(sim, tmp_path, DAY).success
    assert _digest(tmp_path, DAY) == first_digest
    assert len(Lake(str(tmp_path)).snapshot("execution_instances").files[DAY]) == 1
    dupes = _rows(
        tmp_path,
        "SELECT count(*) FROM (SELECT execute_uuid, batch_index, instance_id, count(*) c "
        "FROM execution_instances GROUP BY ALL HAVING c > 1)",
    )
    assert dupes == [(0,)]
    # the other day was not touched
    assert sorted((tmp_path / "execution_instances").glob(f"dt={other}/*")) == other_files
    assert not list((tmp_path / "_staging").glob("*/*"))

    # a full rebuild on request gives the marts the incremental updates gave
    again = _run(
        sim, tmp_path, DAY, run_config={"ops": {"coc_warehouse": {"config": {"rebuild": True}}}}
    )
    assert again.success
    assert _build_metadata(again) == "full rebuild (asked)"
    assert _rows(tmp_path, "SELECT * FROM host_failures ORDER BY ALL") == incremental


def test_midnight_in_a_non_utc_zone_lands_in_exactly_one_day(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    from zoneinfo import ZoneInfo

    tz = "Asia/Shanghai"
    days = [DAY - timedelta(days=1), DAY]
    for day in days:
        assert _run(sim, tmp_path, day, timezone=tz).success
    landed = _rows(tmp_path, "SELECT execute_uuid, dt, epoch_ms(created_at) FROM script_orders")
    uuids = [u for u, _, _ in landed]
    assert len(uuids) == len(set(uuids))
    midnight = int(datetime(DAY.year, DAY.month, DAY.day, tzinfo=ZoneInfo(tz)).timestamp() * 1000)
    by_created = {created: dt for _, dt, created in landed}
    # the simulator plants tickets at local midnight and one millisecond before it
    assert by_created[midnight - 1] == days[0]
    assert by_created[midnight] == days[1]
    for _, dt, created in landed:
        local = datetime.fromtimestamp(created / 1000, ZoneInfo(tz)).date()
        assert local == dt


@pytest.mark.slow
def test_transient_faults_end_with_the_same_data(
    sim: SimulatorServer, day_run: DayRun, tmp_path: Path
) -> None:
    clean = day_run.root
    faulty = tmp_path / "faulty"
    assert day_run.result.success
    sim.faults.update(error_rate=0.15, drop_rate=0.1, rate_limit=400.0, retry_after=False)
    sim.stats.reset()
    result = _run(sim, faulty, DAY)
    assert result.success
    faults = sim.stats.total - sim.stats.count(status=200)
    assert faults > 20  # the run really went through faults
    assert _digest(faulty, DAY) == _digest(clean, DAY)
    meta = result.asset_materializations_for_node("coc_day")[0].metadata
    assert meta["http_retries"].value > 0


def test_a_forbidden_ticket_fails_the_run_and_keeps_the_old_partition(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    assert _run(sim, tmp_path, DAY).success
    before = _parquet(tmp_path)
    start, end = day_window(DAY, UTC)  # type: ignore[arg-type]
    victim = sim.dataset.tickets_in_window(start, end, now=NOW)[3].execute_uuid
    sim.faults.update(forced={victim: 403})
    result = _run(sim, tmp_path, DAY)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure)
    text = str(failure.event_specific_data.error)
    assert victim in text and "403" in text
    assert SK not in text
    assert before and _parquet(tmp_path) == before
    assert not list((tmp_path / "_staging").glob("*/*"))


def test_a_processing_ticket_is_read_again_once_finished(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    today = NOW.date()
    start, end = day_window(today, UTC)  # type: ignore[arg-type]
    early = NOW
    sim.set_now(early)
    result = _run(sim, tmp_path, today)
    assert result.success
    processing = _rows(
        tmp_path,
        f"SELECT count(*) FROM script_orders WHERE dt = DATE '{today}' AND status = 'PROCESSING'",
    )[0][0]
    assert processing > 0
    later = NOW + timedelta(days=3)
    sim.set_now(later)
    assert _run(sim, tmp_path, today).success
    still = _rows(
        tmp_path,
        f"SELECT count(*) FROM script_orders WHERE dt = DATE '{today}' AND status = 'PROCESSING'",
    )[0][0]
    assert still < processing
    # the tickets listed in the first read are all still there, now finished
    count = len(sim.dataset.tickets_in_window(start, end, now=later))
    landed = _rows(tmp_path, f"SELECT count(*) FROM script_orders WHERE dt = DATE '{today}'")
    assert landed == [(count,)]
