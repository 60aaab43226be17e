"""The zone of the partitions: a run in another zone is refused until ``coc-etl repartition``
moves the warehouse, which keeps every ticket in one day and its instances with it."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from coc_simulator.server import SimulatorServer
from tests.support.ingest_runs import (
    AK,
    COC_ETL,
    SK,
    SMALL_DAYS,
    ingest,
    ingest_env,
    one_line_error,
    run,
)

pytestmark = pytest.mark.simulator(SMALL_DAYS, ak=AK, sk=SK)


def test_another_zone_is_refused_until_the_warehouse_is_repartitioned(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    env = ingest_env(sim, warehouse)
    assert ingest(env, "2026-11-17", "--to", "2026-11-19").returncode == 0
    assert json.loads((warehouse / "_warehouse.json").read_text())["timezone"] == "UTC"
    shanghai = {**env, "COC_TIMEZONE": "Asia/Shanghai"}
    sim.stats.reset()
    one_line_error(ingest(shanghai, "2026-11-20"), 2, "Asia/Shanghai", "UTC", "repartition")
    assert sim.stats.total == 0

    con = duckdb.connect(str(warehouse / "coc.duckdb"), read_only=True)
    before = con.execute("SELECT count(*), count(DISTINCT execute_uuid) FROM script_orders")
    tickets, _ = before.fetchone() or (0, 0)
    instances = con.execute("SELECT count(*) FROM execution_instances").fetchone()
    con.close()

    done = run([COC_ETL, "repartition", "--timezone", "Asia/Shanghai"], env)
    assert done.returncode == 0, done.stderr
    assert "partial" in done.stdout and "coc-etl ingest 2026-11-17" in done.stdout
    manifest = json.loads((warehouse / "_warehouse.json").read_text())
    assert manifest == {"timezone": "Asia/Shanghai", "repartitioning_to": None}
    assert not (warehouse / "_repartition").exists()

    con = duckdb.connect(str(warehouse / "coc.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM execution_instances").fetchone() == instances
    orders = con.execute("SELECT execute_uuid, created_at, dt FROM script_orders").fetchall()
    assert len(orders) == len({o[0] for o in orders}) == tickets  # no ticket in two days
    zone = ZoneInfo("Asia/Shanghai")
    assert all(created.astimezone(zone).date() == dt for _, created, dt in orders)
    moved = con.execute(
        """SELECT count(*) FROM execution_instances i JOIN script_orders o USING (execute_uuid)
           WHERE i.dt <> o.dt"""
    ).fetchone()
    assert moved == (0,)  # instances went with their ticket
    con.close()
    # now the warehouse is Shanghai's: a Shanghai run is accepted, a UTC one refused
    assert ingest(shanghai, "2026-11-20").returncode == 0
    one_line_error(ingest(env, "2026-11-20"), 2, "COC_TIMEZONE is UTC")
