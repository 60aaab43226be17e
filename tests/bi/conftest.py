"""A demo-like warehouse for the BI tests: days ingested from the loopback simulator."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.coc.settings import ClientSettings
from pipelines.ingest import ingest_days
from pipelines.settings import WarehouseSettings
from tests.support.setup_lock import setup_lock
from warehouse.build import build_warehouse

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
DAYS = 9


@dataclass(frozen=True)
class BiWarehouse:
    root: Path
    duckdb_path: Path
    days: tuple[date, ...]
    views: tuple[str, ...]


def ingest(root: Path, *, seed: int = 7, days: int = DAYS) -> BiWarehouse:
    """Ingest the simulator's last ``days`` days into ``root`` and build ``coc.duckdb``."""
    from coc_simulator import SimConfig, SimulatorServer

    duckdb_path = root / "coc.duckdb"
    with SimulatorServer(SimConfig(seed=seed, days=days + 1, now=NOW)) as sim:
        client = ClientSettings(endpoint=sim.url, max_rps=None)
        wh = WarehouseSettings(warehouse=str(root), duckdb_path=str(duckdb_path))
        ingest_days(client, wh, span(days))
    built = build_warehouse(warehouse=str(root), duckdb_path=str(duckdb_path))
    return BiWarehouse(root=root, duckdb_path=duckdb_path, days=span(days), views=built.views)


@pytest.fixture(scope="session")
def bi_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BiWarehouse]:
    """Read-only for the tests that use it: copy it (``copy_warehouse``) to change it.

    Built once per ``make test``: under pytest-xdist the first worker that needs it builds it
    in the run's common temp folder, the others wait for that and open the same files.
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        yield ingest(tmp_path_factory.mktemp("bi") / "warehouse")
        return
    shared = tmp_path_factory.getbasetemp().parent / "bi-shared"
    root, built = shared / "warehouse", shared / "views.json"
    with setup_lock(shared / "build.lock"):
        if not built.exists():
            shutil.rmtree(root, ignore_errors=True)  # what a worker that died left, if any
            made = ingest(root)
            built.write_text(json.dumps(made.views))
    views = tuple(json.loads(built.read_text()))
    yield BiWarehouse(root=root, duckdb_path=root / "coc.duckdb", days=span(), views=views)


def span(days: int = DAYS) -> tuple[date, ...]:
    """The days ``ingest`` ingests: the ``days`` before ``NOW``'s, oldest first."""
    last = NOW.date() - timedelta(days=1)
    return tuple(last - timedelta(days=n) for n in reversed(range(days)))


def copy_warehouse(source: BiWarehouse, target: Path) -> BiWarehouse:
    """A copy whose views point at the copy's own Parquet (rebuilt there)."""
    shutil.copytree(source.root, target, ignore=shutil.ignore_patterns("coc.duckdb*"))
    duckdb_path = target / "coc.duckdb"
    built = build_warehouse(warehouse=str(target), duckdb_path=str(duckdb_path))
    return BiWarehouse(root=target, duckdb_path=duckdb_path, days=source.days, views=built.views)
