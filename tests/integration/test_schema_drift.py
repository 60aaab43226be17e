"""Schema drift, end to end: the simulator changes its API without notice (``--drift``), a real
Dagster materialization records it in ``schema_drift`` and warns through its asset check, the
report and the dashboard's query show it, and a replay through the same assets (``replay``
run config) derives the day again without a request."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import AssetCheckSeverity, DagsterInstance, materialize

from assets.ingestion import build_ingestion_asset
from assets.partitions import daily_partitions
from assets.resources import CocApiResource, WarehouseResource
from assets.warehouse import build_warehouse_asset
from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from tests.support.simulator import Simulators
from warehouse.schema_drift import format_drift, recent_drift

#: real simulators and real runs, several seconds each
pytestmark = pytest.mark.slow

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = date(2026, 11, 19)
CONFIG = SimConfig(seed=5, days=3, now=NOW, tickets_per_day=(4, 6), max_batch_size=80)
DRIFTED = replace(CONFIG, drift=True)


def materialize_day(sim_url: str, root: Path, *, replay: bool = False) -> Any:
    partitions = daily_partitions("UTC")
    resources = {
        "coc": CocApiResource(endpoint=sim_url, max_rps="0", concurrency="8"),
        "warehouse": WarehouseResource(warehouse=str(root)),
    }
    run_config = {"ops": {"coc_day": {"config": {"replay": replay}}}}
    return materialize(
        [build_ingestion_asset(partitions), build_warehouse_asset(partitions)],
        partition_key=DAY.isoformat(),
        resources=resources,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config=run_config,
    )


def drift_rows(root: Path) -> dict[tuple[str, str, str], tuple[int, str | None]]:
    with duckdb.connect(str(root / "coc.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT endpoint, field_path, kind, count, example_value FROM schema_drift "
            f"WHERE dt = DATE '{DAY}'"
        ).fetchall()
    return {(e, p, k): (c, x) for e, p, k, c, x in rows}


def drift_check(result: Any) -> Any:
    (check,) = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "schema_as_documented"
    ]
    return check


@pytest.fixture(scope="module")
def drifted(
    tmp_path_factory: pytest.TempPathFactory, module_simulators: Simulators
) -> tuple[SimulatorServer, Path]:
    root = tmp_path_factory.mktemp("drift") / "wh"
    sim = module_simulators.start(DRIFTED)
    result = materialize_day(sim.url, root)
    assert result.success
    return sim, root


def test_drift_is_recorded_with_its_paths_and_the_run_succeeds(
    drifted: tuple[SimulatorServer, Path],
) -> None:
    _, root = drifted
    rows = drift_rows(root)
    target = "data.execute_instances[].target_instance"
    rack = rows[("get_batch", f"{target}.properties.rack", "unexpected")]
    missing = rows[("get_batch", f"{target}.agent_sn", "missing")]
    changed = rows[("get_order", "data.properties.current_execute_batch_index", "type_changed")]
    approval = rows[("get_order", "data.approval_id", "unexpected")]
    with duckdb.connect(str(root / "coc.duckdb"), read_only=True) as con:
        (instances,) = con.execute("SELECT count(*) FROM execution_instances").fetchone() or (0,)
        (tickets,) = con.execute("SELECT count(*) FROM script_orders").fetchone() or (0,)
        (nulls,) = con.execute(
            "SELECT count(*) FROM execution_instances WHERE agent_sn IS NOT NULL"
        ).fetchone() or (1,)
    assert rack[0] == instances and rack[1] is not None and rack[1].startswith("rack-")
    assert missing == (instances, None)
    assert changed[0] == tickets and changed[1] is not None and changed[1].isdigit()
    assert approval[0] == tickets
    assert nulls == 0  # the missing field lands as a null, the rest of the row as sent
    assert len(rows) == 4


def test_the_asset_check_warns_and_the_report_lists_the_drift(
    drifted: tuple[SimulatorServer, Path],
) -> None:
    sim, root = drifted
    # the day again: a warning, and the run still succeeds
    check = drift_check(materialize_day(sim.url, root))
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert "properties.rack: unexpected" in check.description
    with duckdb.connect(str(root / "coc.duckdb"), read_only=True) as con:
        text = format_drift(recent_drift(con, 7), 7)
    assert "unexpected" in text and "data.approval_id" in text and "missing" in text


def test_a_clean_api_passes_the_check(tmp_path: Path) -> None:
    with SimulatorServer(CONFIG) as sim:
        result = materialize_day(sim.url, tmp_path / "wh")
    assert result.success
    check = drift_check(result)
    assert check.passed, check.description
    assert drift_rows(tmp_path / "wh") == {}


def test_dagster_replays_the_day_from_its_archive_without_a_request(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    with SimulatorServer(DRIFTED) as sim:
        assert materialize_day(sim.url, root).success
        before = drift_rows(root)
        with duckdb.connect(str(root / "coc.duckdb"), read_only=True) as con:
            first = con.execute("SELECT * FROM execution_instances ORDER BY ALL").fetchall()
        sim.stats.reset()
        result = materialize_day(sim.url, root, replay=True)
        assert result.success
        assert sim.stats.total == 0
    assert drift_rows(root) == before
    with duckdb.connect(str(root / "coc.duckdb"), read_only=True) as con:
        assert con.execute("SELECT * FROM execution_instances ORDER BY ALL").fetchall() == first


def test_dagster_replay_of_a_day_without_an_archive_fails_naming_it(tmp_path: Path) -> None:
    result = materialize_day("http://127.0.0.1:9", tmp_path / "wh", replay=True)
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error
    message = error.cause.message if error.cause is not None else error.message
    assert f"day {DAY.isoformat()} has no raw archive" in message


def test_a_mapped_field_of_another_type_still_fails_the_run_naming_where(tmp_path: Path) -> None:
    from pipelines.coc.errors import ResponseError
    from pipelines.coc.settings import ClientSettings
    from pipelines.ingest import ingest_days
    from pipelines.settings import WarehouseSettings

    root = tmp_path / "wh"
    wh = WarehouseSettings(warehouse=str(root), duckdb_path=str(tmp_path / "coc.duckdb"))
    with SimulatorServer(CONFIG) as sim:
        ingest_days(ClientSettings(endpoint=sim.url, max_rps=None), wh, [DAY])
    before = {p: p.read_bytes() for p in sorted(root.rglob("*.parquet"))}
    with SimulatorServer(CONFIG) as sim:
        for host in sim.dataset.hosts:  # a zone sent as a number: no string column takes it
            host.target["properties"]["zone_id"] = 4
        with pytest.raises(ResponseError) as failed:
            ingest_days(ClientSettings(endpoint=sim.url, max_rps=None), wh, [DAY])
    message = str(failed.value)
    assert "ticket=" in message and "batch=" in message and "marker=" in message
    assert "target_instance.properties.zone_id" in message
    assert {p: p.read_bytes() for p in sorted(root.rglob("*.parquet"))} == before


def test_the_dashboard_reads_the_drift_panel(drifted: tuple[SimulatorServer, Path]) -> None:
    from warehouse.dashboard import queries

    _, root = drifted
    con = queries.open_warehouse(str(root / "coc.duckdb"))
    try:
        filters = queries.options(con).default_filters()
        assert filters is not None
        frame = queries.refresh(con, filters).drift
    finally:
        con.close()
    assert frame is not None
    found = set(zip(frame["kind"], frame["field_path"], strict=True))
    assert ("unexpected", "data.approval_id") in found and len(found) == 4
