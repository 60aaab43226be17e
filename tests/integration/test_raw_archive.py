"""The raw archive and replay, as a user runs them: ``coc-etl ingest`` against the simulator,
then ``coc-etl replay`` with the simulator gone, in real subprocesses."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from pipelines.transform.schemas import RAW_RESPONSES, TABLES
from tests.support.cli_env import cli_env
from tests.support.lake import read_logged

if TYPE_CHECKING:
    from tests.support.s3server import S3Server

#: real simulators and real runs, several seconds each
pytestmark = pytest.mark.slow

AK = "ARCHIVETESTAK"
SK = "archive-test-secret-key-0123456789abcdef"
TOKEN = "archive-test-iam-token-fedcba9876543210"
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
#: the day the simulator puts its hostile ids on, around UTC and Shanghai midnights
DAY = date(2026, 11, 24)
BIN = Path(sys.executable).parent
MARTS = ("failure_rates_daily", "host_failures", "failure_messages", "ticket_outcomes")


def coc_etl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "coc-etl"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).parents[2],
    )


def tricky() -> SimConfig:
    return SimConfig(
        now=NOW, days=3, hostile_uuids=True, tickets_per_day=(10, 12), max_batch_size=80
    )


def sorted_table_bytes(warehouse: Path, table: str, day: date) -> bytes:
    """The day's rows of ``table``, sorted by every column, as Arrow IPC bytes."""
    data = read_logged(warehouse, table, day, schema=TABLES[table])
    keys = [(n, "ascending") for n in TABLES[table].names if n != "custom_attributes"]
    data = data.sort_by(keys)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as out:
        out.write_table(data.combine_chunks())
    return sink.getvalue().to_pybytes()


def marts(duckdb_path: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        return {m: con.execute(f"SELECT * FROM {m} ORDER BY ALL").fetchall() for m in MARTS}


def snapshot(warehouse: Path, day: date) -> dict[str, object]:
    tables: dict[str, object] = {t: sorted_table_bytes(warehouse, t, day) for t in TABLES}
    return {**tables, **marts(warehouse / "coc.duckdb")}


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai"])
def test_replay_equals_the_original_run_without_a_request(tmp_path: Path, zone: str) -> None:
    warehouse = tmp_path / "wh"
    with SimulatorServer(tricky(), ak=AK, sk=SK) as sim:
        env = cli_env(sim, warehouse, ak=AK, sk=SK, COC_TIMEZONE=zone)
        done = coc_etl("ingest", DAY.isoformat(), env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        asked = sim.stats.total
    original = snapshot(warehouse, DAY)
    assert len(original["execution_instances"]) > 1_000  # type: ignore[arg-type]
    archive = read_logged(warehouse, "raw_responses", DAY)
    assert archive.num_rows == asked  # every response the run used, each once
    assert any("%" in p for p in archive.column("path").to_pylist())  # the hostile ids too

    # the simulator is gone: a replay that asked the API would fail
    (warehouse / "coc.duckdb").unlink()
    done = coc_etl("replay", DAY.isoformat(), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no request to the API" in done.stdout
    replayed = snapshot(warehouse, DAY)
    for name, rows in original.items():
        assert replayed[name] == rows, name
    # the archive is kept as it was published
    assert read_logged(warehouse, "raw_responses", DAY).equals(archive)
    report = coc_etl("report", env=env)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "Schema drift: none" in report.stdout


def test_replay_of_a_day_without_an_archive_exits_2_naming_the_day(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    warehouse = tmp_path / "wh"
    env = cli_env(simulator, warehouse, ak=AK, sk=SK)
    done = coc_etl("replay", "2026-11-23", "--to", "2026-11-24", env=env)
    assert done.returncode == 2, done.stderr
    assert "2026-11-23" in done.stderr and "no raw archive" in done.stderr
    assert not (warehouse / "execution_instances").exists()
    assert simulator.stats.total == 0


@pytest.mark.parametrize("auth", ["aksk", "token"])
def test_the_archive_never_holds_a_header_a_signature_or_a_token(tmp_path: Path, auth: str) -> None:
    warehouse = tmp_path / "wh"
    config = SimConfig(now=NOW, days=2, tickets_per_day=(3, 4), max_batch_size=60)
    credentials = {"ak": AK, "sk": SK} if auth == "aksk" else {"token": TOKEN}
    with SimulatorServer(config, **credentials) as sim:
        env = cli_env(sim, warehouse, ak=AK, sk=SK)
        if auth == "token":
            del env["COC_AK"], env["COC_SK"]
            env["COC_TOKEN"] = TOKEN
        env["COC_PROJECT_ID"] = "archive-test-project"
        done = coc_etl("ingest", DAY.isoformat(), env=env)
        assert done.returncode == 0, done.stderr[-3000:]
    files = list((warehouse / "raw_responses").rglob("*.parquet"))
    assert files
    archive = pq.read_table(files, schema=RAW_RESPONSES)
    assert archive.num_rows > 0
    text = "\n".join(
        str(value)
        for column in archive.columns
        for value in column.to_pylist()
        if not isinstance(value, bytes)
    ) + "\n".join(b.decode("utf-8", "replace") for b in archive.column("body").to_pylist())
    forbidden = (SK, TOKEN, AK, "SDK-HMAC-SHA256", "Signature=", "X-Auth-Token", "x-sdk-date")
    for secret in forbidden:
        assert secret.lower() not in text.lower(), secret
    assert "archive-test-project" not in text  # the x-project-id header neither
    for raw in files:  # nor anywhere in the files' bytes (metadata included)
        assert SK.encode() not in raw.read_bytes() and TOKEN.encode() not in raw.read_bytes()


def test_replay_on_object_storage_reads_the_archive_its_log_names(
    s3_server: S3Server, tmp_path: Path
) -> None:
    from assets.checks import read_day
    from pipelines.coc.settings import ClientSettings
    from pipelines.ingest import ingest_days
    from pipelines.replay import replay_days
    from pipelines.settings import WarehouseSettings

    wh = WarehouseSettings(
        warehouse=f"s3://{s3_server.bucket()}/coc",
        duckdb_path=str(tmp_path / "coc.duckdb"),
        object_store=s3_server.settings(),
    )
    config = SimConfig(now=NOW, days=2, tickets_per_day=(3, 4), max_batch_size=60)

    def rows() -> list[str]:
        table = read_day(
            wh.warehouse, "execution_instances", str(DAY), None, object_store=wh.object_store
        )
        return sorted(repr(tuple(r.values())) for r in table.to_pylist())

    with SimulatorServer(config) as sim:
        ingest_days(ClientSettings(endpoint=sim.url, max_rps=None), wh, [DAY])
    # the day again, other bodies (the API drifted); the first run's objects stay a while
    with SimulatorServer(replace(config, drift=True)) as sim:
        (second,) = ingest_days(ClientSettings(endpoint=sim.url, max_rps=None), wh, [DAY])
    original = rows()
    (replayed,) = replay_days(wh, [DAY])
    assert replayed.responses == second.responses  # one run's archive, not two
    assert rows() == original

    # retention on object storage: one Delta delete; the day is gone for a replay at once
    from pipelines.ingest import apply_archive_retention
    from pipelines.lake.raw_archive import ArchiveMissingError
    from pipelines.replay import check_archived

    assert apply_archive_retention(replace(wh, archive_retention_days=1)) == [DAY]
    with pytest.raises(ArchiveMissingError, match=str(DAY)):
        check_archived(wh, [DAY])
    assert rows() == original  # the tables untouched
