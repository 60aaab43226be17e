"""failure_shifts on simulated data: planted onsets are found on their day, and a steady
estate raises (almost) no alerts.

Real parts throughout: the simulator serves the days over loopback HTTP, ``ingest_days``
(what the Dagster asset calls) publishes them as Parquet, the last day is materialized by a
real Dagster run (which rebuilds ``coc.duckdb`` and runs the shift check), the mart is read
back through DuckDB and ``coc-etl report`` runs as a process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from dagster import AssetCheckSeverity, DagsterInstance, materialize

from assets.checks import NO_FAILURE_SHIFTS
from assets.ingestion import build_ingestion_asset
from assets.partitions import daily_partitions
from assets.resources import CocApiResource, WarehouseResource
from assets.warehouse import build_warehouse_asset
from coc_simulator import SimConfig, SimulatorServer, scenarios
from coc_simulator.scenarios import MESSAGE, onset_days, planted_shifts
from pipelines.coc.settings import ClientSettings
from pipelines.ingest import ingest_days
from pipelines.settings import WarehouseSettings
from tests.support.duck import query as rows
from tests.support.simulator import Simulators
from warehouse import build_warehouse

FIRST = date(2026, 11, 12)
LAST = date(2026, 11, 25)
ONSET = onset_days(LAST)
HOST_DAY, ZONE_DAY, MESSAGE_DAY, VERSION_DAY = (
    ONSET[d] for d in ("host", "zone", "message_pattern", "script_version")
)
ZONE = scenarios.ZONE
VERSION = f"{scenarios.SCRIPT} {scenarios.VERSION}"
#: the simulated clock: after the last day, so every ticket of it has finished
NOW = datetime(2026, 11, 26, 0, 30, tzinfo=UTC)
BIN = Path(sys.executable).parent


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def ingest(sim: SimulatorServer, root: Path, span: list[date]) -> None:
    settings = ClientSettings(endpoint=sim.url, max_rps=None)
    wh = WarehouseSettings(warehouse=str(root), duckdb_path=str(root / "coc.duckdb"))
    ingest_days(settings, wh, span)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, module_simulators: Simulators):
    """14 days with four onsets; days before the last ingested directly, the last through
    Dagster. Yields (duckdb path, the planted host's resource_id, the Dagster result)."""
    root = tmp_path_factory.mktemp("planted")
    scenario = planted_shifts(now=NOW, last=LAST)
    config = scenario.config
    sim = module_simulators.start(config)
    ingest(sim, root, days(FIRST, LAST - timedelta(days=1)))
    partitions = daily_partitions("UTC")
    result = materialize(
        [build_ingestion_asset(partitions), build_warehouse_asset(partitions)],
        partition_key=LAST.isoformat(),
        resources={
            "coc": CocApiResource(endpoint=sim.url, max_rps="0"),
            "warehouse": WarehouseResource(warehouse=str(root)),
        },
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    yield root / "coc.duckdb", scenario.keys["host"], result


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dimension", "onset"),
    [
        ("host", HOST_DAY),
        ("message_pattern", MESSAGE_DAY),
        ("zone", ZONE_DAY),
        ("script_version", VERSION_DAY),
    ],
)
def test_each_onset_alerts_on_its_day_and_ranks_first(planted, dimension: str, onset: date):
    path, host, _ = planted
    wanted = {
        "host": host,
        "zone": ZONE,
        "script_version": VERSION,
    }
    ranked = rows(
        path,
        "SELECT key, alert, since, score FROM failure_shifts "
        "WHERE dt = ? AND dimension = ? AND score IS NOT NULL ORDER BY score DESC",
        [onset, dimension],
    )
    key, alert, since, _ = ranked[0]
    if dimension == "message_pattern":
        assert key.startswith(MESSAGE)
    else:
        assert key == wanted[dimension]
    assert alert is True
    assert since == onset
    before = rows(
        path,
        "SELECT count(*) FILTER (WHERE alert) FROM failure_shifts "
        "WHERE dt < ? AND dimension = ? AND key = ?",
        [onset, dimension, key],
    )
    assert before == [(0,)]


def _key(path: Path, dimension: str, onset: date, host: str) -> str:
    if dimension == "message_pattern":
        ((key,),) = rows(
            path,
            "SELECT key FROM failure_shifts WHERE dt = ? AND dimension = ? AND starts_with(key, ?)",
            [onset, dimension, MESSAGE],
        )
        return str(key)
    return {"host": host, "zone": ZONE, "script_version": VERSION}[dimension]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dimension", "onset"),
    [
        ("host", HOST_DAY),
        ("message_pattern", MESSAGE_DAY),
        ("zone", ZONE_DAY),
        ("script_version", VERSION_DAY),
    ],
)
def test_each_onset_stays_open_with_its_since_while_the_plant_is_in_force(
    planted, dimension: str, onset: date
) -> None:
    path, host, _ = planted
    key = _key(path, dimension, onset, host)
    found = rows(
        path,
        "SELECT dt, alert, since FROM failure_shifts "
        "WHERE dt >= ? AND dimension = ? AND key = ? ORDER BY dt",
        [onset, dimension, key],
    )
    assert found[0][0] == onset
    assert [(alert, since) for _, alert, since in found] == [(True, onset)] * len(found)
    episodes = rows(
        path,
        "SELECT opened, closed, last_alerted FROM alert_episodes WHERE dimension = ? AND key = ?",
        [dimension, key],
    )
    assert episodes == [(onset, None, found[-1][0])]


@pytest.mark.slow
def test_an_onset_whose_plant_stops_closes_on_the_hosts_first_day_after_it(planted) -> None:
    path, _, _ = planted
    scenario = planted_shifts(now=NOW, last=LAST)
    assert scenario.ended_days is not None
    start, until = scenario.ended_days
    found = rows(
        path,
        "SELECT dt, alert, since FROM failure_shifts "
        "WHERE dt >= ? AND dimension = 'host' AND key = ? ORDER BY dt",
        [start, scenario.ended_host],
    )
    during = [(alert, since) for dt, alert, since in found if dt < until]
    assert found[0][0] == start
    assert during == [(True, start)] * len(during)
    back = next(dt for dt, _, _ in found if dt >= until)
    assert [(alert, since) for dt, alert, since in found if dt >= until] == [(False, None)] * len(
        [dt for dt, _, _ in found if dt >= until]
    )
    assert rows(
        path,
        "SELECT opened, closed FROM alert_episodes WHERE dimension = 'host' AND key = ?",
        [scenario.ended_host],
    ) == [(start, back)]


@pytest.mark.slow
def test_the_check_warns_naming_the_newest_days_alerts(planted) -> None:
    _, _, result = planted
    (check,) = [
        c for c in result.get_asset_check_evaluations() if c.check_name == NO_FAILURE_SHIFTS.name
    ]
    assert check.passed is False
    assert check.severity == AssetCheckSeverity.WARN
    assert f"script_version {VERSION}: " in check.description
    assert "new: no runs in the 7 days before" in check.description
    assert f"since {VERSION_DAY.isoformat()}" in check.description
    assert check.metadata["newest_day"].value == LAST.isoformat()


@pytest.mark.slow
def test_report_prints_the_newest_days_alerts_first(planted) -> None:
    path, _, _ = planted
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COC_", "DAGSTER_"))}
    done = subprocess.run(
        [str(BIN / "coc-etl"), "report", "--duckdb", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"Failure shifts on {LAST.isoformat()} (newest day): ")
    assert lines[1].startswith("  ")
    first_rates = next(n for n, line in enumerate(lines) if line.startswith("Failure rate by"))
    version = next(n for n, line in enumerate(lines) if f"script_version {VERSION}:" in line)
    assert version < first_rates


#: steady days with a score: a day's row depends on the 14 days before it (a 7-day baseline,
#: and a dispersion over the day and the 7 before, each with its own baseline), so these cover
#: every state of the windows, from the first baseline to full ones, and a week of full ones
#: (the bench's ``failure_shifts`` counts over 30 days and several seeds)
STEADY_SCORED_DAYS = 14 + 7


@pytest.mark.slow
def test_false_alarms_over_three_steady_weeks_stay_under_one_per_thousand_key_days(
    tmp_path: Path,
) -> None:
    """22 simulated days, nothing planted (no mid-span rollout either); 21 have a baseline."""
    now = datetime(2026, 11, 26, 0, 30, tzinfo=UTC)
    config = SimConfig(now=now, days=STEADY_SCORED_DAYS + 2, seed=7, rollouts=False)
    with SimulatorServer(config) as sim:
        span = sim.dataset.days()[:-1]
        ingest(sim, tmp_path, span)
    build_warehouse(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "coc.duckdb"))
    ((tested, alerts, scored_days),) = rows(
        tmp_path / "coc.duckdb",
        "SELECT count(*), count(*) FILTER (WHERE alert), count(DISTINCT dt) "
        "FROM failure_shifts WHERE score IS NOT NULL",
    )
    print(f"failure_shifts false alarms: {alerts} alert rows of {tested} key-days tested")
    assert scored_days >= STEADY_SCORED_DAYS
    assert alerts / tested <= 1 / 1000
