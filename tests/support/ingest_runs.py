"""``coc-etl`` runs of small days against the module's simulator, and what they leave behind:
the helpers of the modules that check how a run refuses, fails and stops
(test_refused_configuration, test_build_failures, test_live_duckdb_writer,
test_partition_zone_change, test_termination, test_messages_and_help)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from pipelines.lake.tables import Lake
from pipelines.transform.schemas import DAY_TABLES
from tests.support import cli_run
from tests.support.cli_env import cli_env

AK = "HARDENINGAK"
SK = "hardening-secret-key-0123456789abcdef"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
COC_ETL = cli_run.COC_ETL
ROOT = cli_run.ROOT
#: small days (about a tenth of the default): these modules need no volume but the
#: SIGTERM one's, which has its own simulator
SMALL_DAYS = SimConfig(seed=5, days=4, now=NOW, tickets_per_day=(6, 8), max_batch_size=60)

run = cli_run.run


def ingest_env(sim: SimulatorServer, warehouse: Path, **extra: str) -> dict[str, str]:
    return cli_env(sim, warehouse, ak=AK, sk=SK, **extra)


def ingest(env: dict[str, str], *days: str) -> subprocess.CompletedProcess:
    return run([COC_ETL, "ingest", *days], env)


def one_line_error(done: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The run exited ``code`` with one line on stderr naming every needle, no secret."""
    return cli_run.one_line_error(done, code, *needles, secrets=(SK,))


def committed(warehouse: Path) -> dict[Path, bytes]:
    """The files the tables' Delta logs name, with their bytes."""
    lake = Lake(str(warehouse))
    named = [
        warehouse / table / p
        for table in DAY_TABLES  # the raw archive and the drift too
        for paths in lake.snapshot(table).files.values()
        for p in paths
    ]
    return {p: p.read_bytes() for p in sorted(named)}


def uncommitted(warehouse: Path) -> list[Path]:
    """Data files that no commit names now (a run's, while it writes)."""
    named = set(committed(warehouse))
    return [p for p in sorted(warehouse.glob("*/dt=*/*.parquet")) if p not in named]


def exec_after(prelude: str, command: list[str]) -> list[str]:
    """``command``, exec'd by a Python that first runs ``prelude`` (limits and signal
    dispositions survive exec; no ``preexec_fn`` in this threaded test process)."""
    launcher = f"import os, resource, signal, sys; {prelude}; os.execv(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", launcher, *command]
