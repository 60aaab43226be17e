"""A new column later is one change to the schema plus ``coc-etl replay`` over the history.

The simulator's API starts sending a host property nobody maps (``rack``); two days are
ingested with today's code, and the archive keeps it. Then a copy of the code gets the one
change (the field in the documented models, the column and its mapping in the schema) and
``coc-etl replay`` runs from that copy, with the simulator gone: the column appears, filled,
for the past days, and it is no longer reported as drift.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from coc_simulator.catalog import DRIFT_PROPERTY
from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from pipelines.coc.settings import ClientSettings
from pipelines.ingest import ingest_days
from pipelines.settings import WarehouseSettings
from tests.support.lake import read_logged

REPO = Path(__file__).parents[2]
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
DAYS = [date(2026, 11, 23), date(2026, 11, 24)]
CONFIG = replace(SimConfig(now=NOW, days=3, tickets_per_day=(4, 5), max_batch_size=60), drift=True)

#: the one change: (file, text, replacement)
SCHEMA_CHANGE = (
    (
        "pipelines/coc/models.py",
        "    project_id: str | None = None\n\n\nclass TargetInstance",
        "    project_id: str | None = None\n    rack: str | None = None\n\n\nclass TargetInstance",
    ),
    (
        "pipelines/transform/schemas.py",
        '        pa.field("custom_attributes", ATTRIBUTES),\n    ]\n)\n\nSCRIPT_ORDERS',
        '        pa.field("custom_attributes", ATTRIBUTES),\n        pa.field("rack", pa.string()),'
        "\n    ]\n)\n\nSCRIPT_ORDERS",
    ),
    (
        "pipelines/transform/schemas.py",
        '    ("group_name", "group"),\n)',
        '    ("group_name", "group"),\n    ("rack", "rack"),\n)',
    ),
    (
        "pipelines/transform/drift.py",
        "    group=STRING,\n    project_id=STRING,\n)",
        "    group=STRING,\n    project_id=STRING,\n    rack=STRING,\n)",
    ),
)


def changed_copy(target: Path) -> Path:
    for package in ("pipelines", "warehouse", "coc_simulator", "assets"):
        shutil.copytree(
            REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name, old, new in SCHEMA_CHANGE:
        path = target / name
        text = path.read_text()
        assert text.count(old) == 1, f"{name} no longer has the text the change replaces"
        path.write_text(text.replace(old, new))
    return target


def drift_paths(warehouse: Path, day: date) -> set[str]:
    drift = read_logged(warehouse, "schema_drift", day)
    return set(drift.column("field_path").to_pylist())


@pytest.mark.slow
def test_a_new_column_appears_for_past_days_by_replay_without_the_api(tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    wh = WarehouseSettings(warehouse=str(warehouse), duckdb_path=str(tmp_path / "coc.duckdb"))
    with SimulatorServer(CONFIG) as sim:
        ingested = ingest_days(ClientSettings(endpoint=sim.url, max_rps=None), wh, DAYS)
        truth = {
            host.target["properties"]["host_name"]: host.target["properties"][DRIFT_PROPERTY]
            for host in sim.dataset.hosts
        }
    rack = f"data.execute_instances[].target_instance.properties.{DRIFT_PROPERTY}"
    for day in DAYS:
        table = read_logged(warehouse, "execution_instances", day)
        assert DRIFT_PROPERTY not in table.column_names
        assert rack in drift_paths(warehouse, day)

    code = changed_copy(tmp_path / "code")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COC_", "DAGSTER_"))}
    env |= {"PYTHONPATH": str(code), "COC_WAREHOUSE": str(warehouse)}
    done = subprocess.run(
        [sys.executable, "-m", "coc_etl.cli", "replay", str(DAYS[0]), "--to", str(DAYS[1])],
        env=env,
        cwd=code,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    for day, before in zip(DAYS, ingested, strict=True):
        table = read_logged(warehouse, "execution_instances", day)
        assert table.num_rows == before.rows
        pairs = zip(
            table.column("host_name").to_pylist(),
            table.column(DRIFT_PROPERTY).to_pylist(),
            strict=True,
        )
        assert all(truth[host] == value for host, value in pairs)
        assert rack not in drift_paths(warehouse, day)  # documented now
