"""Configuration that cannot work is refused before the first request: bad settings and
days, credentials inside the endpoint, an unusable warehouse or DuckDB path (exit 2, one
line naming the variable, nothing fetched or written), and Dagster refusing to load.

Each test runs ``coc-etl`` (or ``dagster``) as a subprocess against the simulator on
loopback and looks at the exit code, stderr, the files left behind and the requests the
simulator answered.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from coc_etl.demo import materialize_command
from coc_simulator.server import SimulatorServer
from tests.support.ingest_runs import (
    AK,
    SK,
    SMALL_DAYS,
    ingest,
    ingest_env,
    one_line_error,
    run,
)

pytestmark = pytest.mark.simulator(SMALL_DAYS, ak=AK, sk=SK)


# each case is a process (about 2 s); the other bounds are unit-tested in test_settings.py
@pytest.mark.parametrize(
    ("extra", "days", "needles"),
    [
        ({"COC_CONCURRENCY": "1000000"}, [], ["COC_CONCURRENCY", "1..256"]),
        ({"COC_CONCURRENCY": str(10**12)}, [], ["COC_CONCURRENCY"]),
        ({"COC_MAX_RPS": "nan"}, [], ["COC_MAX_RPS", "'nan'"]),
        ({"COC_TOKEN": "tok-hardening-secret"}, [], ["COC_TOKEN", "not both"]),
        ({"COC_TIMEZONE": "Mars/Olympus"}, [], ["COC_TIMEZONE", "Mars/Olympus"]),
        ({}, ["2023-12-31"], ["2023-12-31", "before 2024-01-01"]),
        ({}, ["9999-12-31"], ["9999-12-31", "in the future"]),
        ({}, ["2026-11-18", "--to", "9999-12-31"], ["--to 9999-12-31", "in the future"]),
    ],
)
def test_bad_settings_and_days_exit_2_before_any_request(
    sim: SimulatorServer, tmp_path: Path, extra: dict[str, str], days: list[str], needles: list[str]
) -> None:
    warehouse = tmp_path / "wh"
    sim.stats.reset()
    done = ingest(ingest_env(sim, warehouse, **extra), *(days or ["2026-11-18"]))
    err = one_line_error(done, 2, "configuration error", *needles)
    assert "tok-hardening-secret" not in err
    assert sim.stats.total == 0
    assert not list(warehouse.glob("*/dt=*"))


def test_credentials_inside_the_endpoint_are_refused_and_never_echoed(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    host = sim.url.split("://", 1)[1]
    env = ingest_env(sim, tmp_path / "wh", COC_ENDPOINT=f"http://admin:hunter2pw@{host}")
    err = one_line_error(ingest(env, "2026-11-18"), 2, "COC_ENDPOINT", "user or password")
    assert "hunter2pw" not in err


def _not_writable(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return {"COC_WAREHOUSE": str(blocker / "wh")}


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("glob", ["COC_WAREHOUSE", "glob characters"]),
        ("unwritable", ["COC_WAREHOUSE", "not a folder this run can write"]),
        ("duckdb-folder", ["COC_DUCKDB", "is a folder"]),
        ("duckdb-proc", ["COC_DUCKDB", "/proc"]),
    ],
)
def test_preflight_refuses_an_unusable_warehouse_before_fetching(
    sim: SimulatorServer, tmp_path: Path, case: str, needles: list[str]
) -> None:
    env = ingest_env(sim, tmp_path / "wh")
    if case == "glob":
        env["COC_WAREHOUSE"] = str(tmp_path / "w[x]")
    elif case == "unwritable":
        env.update(_not_writable(tmp_path))
    elif case == "duckdb-folder":
        (tmp_path / "folder.duckdb").mkdir()
        env["COC_DUCKDB"] = str(tmp_path / "folder.duckdb")
    else:
        env["COC_DUCKDB"] = "/proc/coc.duckdb"
    sim.stats.reset()
    one_line_error(ingest(env, "2026-11-18"), 2, *needles)
    assert sim.stats.total == 0, "the check must come before the first request"
    assert not list(tmp_path.glob("**/dt=*"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "value"), [("COC_TIMEZONE", "Mars/Olympus"), ("COC_LOOKBACK_DAYS", "-1")]
)
def test_dagster_refuses_to_load_naming_the_variable(
    sim: SimulatorServer, tmp_path: Path, name: str, value: str
) -> None:
    env = ingest_env(sim, tmp_path / "wh", **{name: value})
    (tmp_path / "dagster_home").mkdir(exist_ok=True)  # cli_env makes it too
    done = run(materialize_command("--partition", "2026-11-18"), env)
    assert done.returncode != 0
    assert name in done.stdout + done.stderr
    assert not (tmp_path / "wh" / "execution_instances").exists()
