"""A run that would shrink a published day past the allowed share refuses to publish it.

The API answering no tickets for a day that holds instances (a permission change, a blip) is
played by a second simulator whose history starts after the day: ``coc-etl ingest`` exits 4
naming the day, both counts and the setting, the published day intact; under Dagster the run
fails with the same message; ``--allow-shrink`` / ``COC_ALLOW_SHRINK=1`` publish it on purpose.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from assets.ingestion import build_ingestion_asset
from assets.partitions import daily_partitions
from assets.resources import CocApiResource, WarehouseResource
from assets.warehouse import build_warehouse_asset
from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from pipelines.lake.tables import Lake
from pipelines.transform.schemas import TABLES
from tests.support.cli_env import cli_env
from tests.support.simulator import Simulators

AK, SK = "SHRINKAK", "shrink-secret-0123456789"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = "2026-11-17"
COC_ETL = str(Path(sys.executable).with_name("coc-etl"))


@pytest.fixture(scope="module")
def full(module_simulators: Simulators) -> SimulatorServer:
    config = SimConfig(seed=4, days=4, now=NOW, tickets_per_day=(5, 6), max_batch_size=40)
    return module_simulators.start(config, ak=AK, sk=SK)


@pytest.fixture(scope="module")
def empty(module_simulators: Simulators) -> SimulatorServer:
    """The same API, listing no tickets for ``DAY``."""
    config = SimConfig(seed=4, days=1, now=NOW, tickets_per_day=(5, 6), max_batch_size=40)
    return module_simulators.start(config, ak=AK, sk=SK)


def published(root: Path) -> dict[str, tuple[int | None, tuple[str, ...]]]:
    lake = Lake(str(root))
    return {
        t: (s.version, s.files.get(datetime.fromisoformat(DAY).date(), ()))
        for t in TABLES
        if (s := lake.snapshot(t))
    }


def ingest(sim: SimulatorServer, root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [COC_ETL, "ingest", DAY, *args],
        env=cli_env(sim, root, ak=AK, sk=SK, **env),
        capture_output=True,
        text=True,
        timeout=180,
    )


def instances(root: Path) -> int:
    return Lake(str(root)).day_rows("execution_instances", datetime.fromisoformat(DAY).date()) or 0


def test_the_cli_refuses_a_day_that_would_shrink_to_zero(
    full: SimulatorServer, empty: SimulatorServer, tmp_path: Path
) -> None:
    root = tmp_path / "wh"
    assert ingest(full, root).returncode == 0
    count = instances(root)
    assert count > 0
    before = published(root)

    refused = ingest(empty, root)
    assert refused.returncode == 4, refused.stderr
    (line,) = [ln for ln in refused.stderr.splitlines() if ln.startswith("coc-etl:")]
    assert f"day {DAY}" in line and f"from {count} published instances to 0" in line
    assert "COC_ALLOW_SHRINK" in line and "--allow-shrink" in line
    assert "Traceback" not in refused.stderr and SK not in refused.stdout + refused.stderr
    assert published(root) == before

    on_purpose = ingest(empty, root, "--allow-shrink")
    assert on_purpose.returncode == 0, on_purpose.stderr
    assert instances(root) == 0


def test_a_dagster_run_that_would_shrink_a_day_fails_and_the_setting_allows_it(
    full: SimulatorServer, empty: SimulatorServer, tmp_path: Path
) -> None:
    root = tmp_path / "wh"

    def run(sim: SimulatorServer, **warehouse: str):  # type: ignore[no-untyped-def]
        partitions = daily_partitions("UTC")
        return materialize(
            [build_ingestion_asset(partitions), build_warehouse_asset(partitions)],
            partition_key=DAY,
            resources={
                "coc": CocApiResource(endpoint=sim.url, ak=AK, sk=SK, max_rps="0"),
                "warehouse": WarehouseResource(warehouse=str(root), **warehouse),
            },
            instance=DagsterInstance.ephemeral(),
            raise_on_error=False,
        )

    assert run(full).success
    count = instances(root)
    before = published(root)
    failed = run(empty)
    assert not failed.success
    failures = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failures[0].event_specific_data.error  # type: ignore[union-attr]
    message = error.to_string()
    assert f"day {DAY}" in message and f"from {count} published instances to 0" in message
    assert "COC_ALLOW_SHRINK" in message
    assert published(root) == before
    assert run(empty, allow_shrink="1").success
    assert instances(root) == 0
