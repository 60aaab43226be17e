"""An ``s3://`` warehouse, end to end, against moto's S3 server (a real process on loopback).

The same simulator day lands in a local warehouse and in a bucket, and every view and mart
of the two ``coc.duckdb`` files answer the same rows; readers of ``coc.duckdb`` never see a
republished day twice or half; reruns replace the day and the vacuum removes superseded
objects once no published ``coc.duckdb`` names them; a failed run leaves the previous day
readable (a killed one: ``test_parquet_crash.py``, on both storage kinds); bad configuration
fails before the COC API is asked anything. Secrets never reach the output.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from deltalake import DeltaTable

from coc_etl.demo import materialize_command
from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from pipelines.coc.errors import CocError
from pipelines.coc.settings import ClientSettings
from pipelines.errors import ConfigError
from pipelines.ingest import ingest_days
from pipelines.lake.day_writer import DayWriter, warehouse_publisher
from pipelines.lake.objectstore import S3Location, check_access
from pipelines.lake.tables import storage_options
from pipelines.settings import (
    ObjectStoreSettings,
    WarehouseSettings,
    warehouse_settings_from_env,
)
from pipelines.transform.schemas import DAY_TABLES
from tests.integration.parquet_crash_writer import write_day
from tests.support.s3server import S3Server
from tests.support.views import view_rows
from warehouse.build import build_warehouse, connect

AK = "S3TESTAK"
SK = "s3-test-coc-secret-0123456789abcdef"
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 11, 18)
BIN = Path(sys.executable).parent
REPO = Path(__file__).parents[2]
#: what an ingestion publishes per day: the three tables, the raw archive and schema drift
TABLE_NAMES = tuple(DAY_TABLES)
#: what a bare ``DayWriter`` publishes
CONTRACT_TABLES = ("execution_instances", "script_orders", "order_batches")


pytestmark = pytest.mark.simulator(SimConfig(seed=3, days=4, now=NOW), ak=AK, sk=SK)


def client(sim: SimulatorServer) -> ClientSettings:
    return ClientSettings(endpoint=sim.url, ak=AK, sk=SK, max_rps=None)


def s3_warehouse(
    s3: S3Server, tmp_path: Path, name: str = "s3", **settings: object
) -> WarehouseSettings:
    return WarehouseSettings(
        warehouse=f"s3://{s3.bucket()}/coc",
        duckdb_path=str(tmp_path / name / "coc.duckdb"),
        object_store=s3.settings(**settings),
    )


def build(wh: WarehouseSettings, retention_h: float = 168) -> str:
    built = build_warehouse(
        warehouse=wh.warehouse,
        duckdb_path=wh.duckdb_path,
        object_store=wh.object_store,
        vacuum_retention_h=retention_h,
    )
    return built.duckdb_path


def named_keys(s3: S3Server, wh: WarehouseSettings) -> list[str]:
    """The objects the tables' newest Delta versions name."""
    where = S3Location.parse(wh.warehouse)
    options = storage_options(wh.object_store)
    return sorted(
        uri.removeprefix(f"s3://{where.bucket}/")
        for t in TABLE_NAMES
        for uri in DeltaTable(f"{where.uri}/{t}", storage_options=options).file_uris()
    )


def every_view(duckdb_path: str, object_store: ObjectStoreSettings | None) -> dict[str, list]:
    """Every view of the file (tables and marts), all rows in a stable order, from a fresh
    connection given the documented configuration."""
    con = connect(duckdb_path, object_store=object_store)
    try:
        return view_rows(con)
    finally:
        con.close()


def day_count(duckdb_path: str, object_store: ObjectStoreSettings | None) -> int:
    con = connect(duckdb_path, object_store=object_store)
    try:
        row = con.execute("SELECT count(*) FROM execution_instances WHERE dt = ?", [DAY]).fetchone()
        assert row is not None
        return int(row[0])
    finally:
        con.close()


def data_keys(s3: S3Server, wh: WarehouseSettings) -> list[str]:
    """The data objects of the warehouse (not the Delta logs), committed or not; not the empty
    ``folder/`` markers pyarrow leaves where it deleted a folder's last object."""
    where = S3Location.parse(wh.warehouse)
    keys = s3.keys(where.bucket, where.prefix + "/")
    return [
        k
        for k in keys
        if not k.endswith("/") and k.split("/")[1] in TABLE_NAMES and "/_delta_log/" not in k
    ]


# -- exact data ------------------------------------------------------------------------------


def test_a_day_in_a_bucket_equals_the_same_day_on_a_local_disk(
    sim: SimulatorServer, s3_server: S3Server, tmp_path: Path
) -> None:
    local = WarehouseSettings(
        warehouse=str(tmp_path / "local"), duckdb_path=str(tmp_path / "local" / "coc.duckdb")
    )
    remote = s3_warehouse(s3_server, tmp_path)
    ingest_days(client(sim), local, [DAY])
    [result] = ingest_days(client(sim), remote, [DAY])
    assert result.rows > 1000

    expected = every_view(build(local), None)
    got = every_view(build(remote), remote.object_store)
    assert set(got) >= {"execution_instances", "failure_rates_daily", "ticket_outcomes"}
    assert got == expected
    # each table's log names the run's one object of the day, and there is no other
    assert named_keys(s3_server, remote) == sorted(data_keys(s3_server, remote))
    assert len(data_keys(s3_server, remote)) == len(TABLE_NAMES)

    # the dashboard's connection reads the views' objects too (its drill-down reads them)
    from warehouse.dashboard import queries

    con = queries.open_warehouse(remote.duckdb_path, object_store=remote.object_store)
    try:
        ticket = got["script_orders"][0][0]
        batches = queries.ticket_batches(con, DAY, ticket)
        assert str(len(batches)) == next(r for r in got["ticket_outcomes"] if r[1] == ticket)[5]
    finally:
        con.close()


def test_a_rerun_replaces_the_day_and_the_vacuum_removes_what_no_published_file_names(
    sim: SimulatorServer, s3_server: S3Server, tmp_path: Path
) -> None:
    wh = s3_warehouse(s3_server, tmp_path)
    ingest_days(client(sim), wh, [DAY])
    first = every_view(build(wh, retention_h=0), wh.object_store)
    first_keys = data_keys(s3_server, wh)
    held = tmp_path / "held.duckdb"  # a reader still has the first file
    held.write_bytes(Path(wh.duckdb_path).read_bytes())

    ingest_days(client(sim), wh, [DAY])
    again = every_view(build(wh, retention_h=0), wh.object_store)
    assert again == first
    # superseded, past the retention, but the file the build replaced named them: kept; the
    # raw archive, which no coc.duckdb names (replay reads its newest version), goes at once
    keys = data_keys(s3_server, wh)
    archived = [k for k in first_keys if "/raw_responses/" in k]
    assert len(archived) == 1 and archived[0] not in keys
    assert len(keys) == 2 * len(TABLE_NAMES) - 1
    assert set(first_keys) - set(archived) < set(keys)
    assert every_view(str(held), wh.object_store) == first
    # the next build replaces the file that named them: now they go
    build(wh, retention_h=0)
    assert data_keys(s3_server, wh) == named_keys(s3_server, wh)
    assert not set(first_keys) & set(named_keys(s3_server, wh))


def test_superseded_objects_outlive_the_retention(
    sim: SimulatorServer, s3_server: S3Server, tmp_path: Path
) -> None:
    wh = s3_warehouse(s3_server, tmp_path)
    ingest_days(client(sim), wh, [DAY])
    old_path = build(wh)
    before = every_view(old_path, wh.object_store)
    held = tmp_path / "held.duckdb"  # a reader still has the old file
    held.write_bytes(Path(old_path).read_bytes())

    ingest_days(client(sim), wh, [DAY])
    build(wh)
    assert every_view(build(wh), wh.object_store) == before
    assert len(data_keys(s3_server, wh)) == 2 * len(TABLE_NAMES)
    assert every_view(str(held), wh.object_store) == before  # its objects are still there


def test_a_forbidden_ticket_leaves_the_previous_day_as_it_was(
    sim: SimulatorServer, s3_server: S3Server, tmp_path: Path
) -> None:
    wh = s3_warehouse(s3_server, tmp_path)
    ingest_days(client(sim), wh, [DAY])
    before = every_view(build(wh), wh.object_store)
    where = S3Location.parse(wh.warehouse)
    keys = s3_server.keys(where.bucket)
    start, end = sim.dataset.day_window(DAY.isoformat())
    victim = sim.dataset.tickets_in_window(start, end, now=NOW)[1].execute_uuid
    sim.faults.update(forced={victim: 403})
    try:
        with pytest.raises(CocError) as info:
            ingest_days(client(sim), wh, [DAY])
    finally:
        sim.faults.reset()
    assert victim in str(info.value) and "403" in str(info.value)
    assert s3_server.keys(where.bucket) == keys  # its files removed, nothing else touched
    assert every_view(build(wh), wh.object_store) == before


# -- readers racing a publish ------------------------------------------------------------------


def test_a_reader_never_sees_a_republished_day_twice_or_half(
    s3_server: S3Server, tmp_path: Path
) -> None:
    wh = s3_warehouse(s3_server, tmp_path)
    sizes = (300, 200)

    def republish(i: int) -> None:
        with DayWriter(day=DAY, publisher=warehouse_publisher(wh), lock_dir=str(tmp_path)) as w:
            write_day(w, f"v{i}", sizes[i % 2])
            w.commit()
        build(wh)

    republish(0)
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(day_count(wh.duckdb_path, wh.object_store))
            except BaseException as exc:  # reported by the test, not lost in the thread
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        # three republishes (200, 300, 200 rows): superseded objects outlive the retention,
        # so views not pinned to one version would show both runs in every read after the first
        for i in range(1, 4):
            republish(i)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert len(seen) > 10
    assert set(seen) == set(sizes)  # both versions seen, nothing else: never twice, never half


# -- the contract's commands -------------------------------------------------------------------


def cli_env(sim: SimulatorServer, s3: S3Server, warehouse: str, home: Path, **extra: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COC_", "DAGSTER_", "AWS_"))}
    home.mkdir(parents=True, exist_ok=True)
    env |= s3.env(warehouse) | {
        "COC_ENDPOINT": sim.url,
        "COC_AK": AK,
        "COC_SK": SK,
        "COC_MAX_RPS": "0",
        "COC_DUCKDB": str(home / "coc.duckdb"),
        "DAGSTER_HOME": str(home / "dagster"),
    }
    (home / "dagster").mkdir(exist_ok=True)
    return env | extra


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=240, cwd=REPO)


@pytest.mark.slow
def test_dagster_and_coc_etl_land_the_same_rows_as_a_local_warehouse(
    sim: SimulatorServer, s3_server: S3Server, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    env = cli_env(sim, s3_server, str(local), local, COC_DUCKDB=str(local / "coc.duckdb"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        del env[name]
    assert run([str(BIN / "coc-etl"), "ingest", DAY.isoformat()], env).returncode == 0
    expected = every_view(str(local / "coc.duckdb"), None)
    local_report = run([str(BIN / "coc-etl"), "report", "--days", "3"], env)

    dagster_wh = f"s3://{s3_server.bucket()}/coc"
    env = cli_env(sim, s3_server, dagster_wh, tmp_path / "dagster")
    done = run(materialize_command("--partition", DAY.isoformat()), env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert s3_server.secret_access_key not in done.stdout + done.stderr
    wh = warehouse_settings_from_env(env)
    assert every_view(wh.duckdb_path, wh.object_store) == expected

    cli_wh = f"s3://{s3_server.bucket()}/a/b"
    env = cli_env(sim, s3_server, cli_wh, tmp_path / "cli")
    done = run([str(BIN / "coc-etl"), "ingest", DAY.isoformat()], env)
    assert done.returncode == 0, done.stderr
    wh = warehouse_settings_from_env(env)
    assert every_view(wh.duckdb_path, wh.object_store) == expected
    report = run([str(BIN / "coc-etl"), "report", "--days", "3"], env)
    assert report.returncode == 0, report.stderr
    assert report.stdout == local_report.stdout and "total" in report.stdout
    # without the object-storage settings the views cannot be read: said, not a traceback
    bare = {k: v for k, v in env.items() if not k.startswith(("AWS_", "COC_WAREHOUSE"))}
    lost = run([str(BIN / "coc-etl"), "report", "--duckdb", wh.duckdb_path], bare)
    assert lost.returncode == 2 and "COC_WAREHOUSE" in lost.stderr, lost.stderr
    for out in (done, report, lost):
        assert s3_server.secret_access_key not in out.stdout + out.stderr
        assert SK not in out.stdout + out.stderr


def test_the_zone_record_goes_through_the_runs_settings_not_the_sdks_environment(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pre-flight claims the warehouse's zone in ``_warehouse.json`` with the settings it
    was given (endpoint, addressing, keys), whatever the process environment says: here the
    ``AWS_*`` variables name another endpoint and other keys, as for a resource filled from
    other values than the process's own."""
    from pipelines.lake.zone_record import read_manifest as read_zone
    from warehouse.preflight import check_warehouse

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", nowhere)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", nowhere)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOT-THE-RUNS-KEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-runs-secret-0123456789")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    wh = WarehouseSettings(
        warehouse=f"s3://{s3_server.bucket()}/coc",
        duckdb_path=str(tmp_path / "coc.duckdb"),
        timezone="Asia/Shanghai",
        object_store=s3_server.settings(),
    )
    check_warehouse(wh)
    where = S3Location.parse(wh.warehouse)
    assert f"{where.prefix}/_warehouse.json" in s3_server.keys(where.bucket)
    zone = read_zone(wh.warehouse, object_store=wh.object_store)
    assert zone is not None and zone.timezone == "Asia/Shanghai"
    other = WarehouseSettings(  # read back: another zone is refused, naming the variable
        warehouse=wh.warehouse, duckdb_path=wh.duckdb_path, object_store=wh.object_store
    )
    with pytest.raises(ConfigError, match=r"COC_TIMEZONE is UTC .* partitioned in Asia/Shanghai"):
        check_warehouse(other)


# -- bad configuration -------------------------------------------------------------------------


def _bad(s3: S3Server, case: str) -> tuple[dict[str, str], str]:
    """The variables that make ``case`` wrong, and the variable the error must name."""
    if case == "missing bucket":
        return {"COC_WAREHOUSE": "s3://no-such-bucket-here/coc"}, "COC_WAREHOUSE"
    if case == "wrong credentials":
        return {
            "AWS_SECRET_ACCESS_KEY": "wrong-secret-0123456789abcdefXYZ"
        }, "AWS_SECRET_ACCESS_KEY"
    if case == "unreachable endpoint":
        import socket

        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}, "AWS_ENDPOINT_URL"
    assert case == "plain http to a remote host"
    return {"AWS_ENDPOINT_URL": "http://obs.example.com:9000"}, "AWS_ENDPOINT_URL"


@pytest.mark.parametrize(
    "case",
    ["missing bucket", "wrong credentials", "unreachable endpoint", "plain http to a remote host"],
)
def test_bad_object_storage_configuration_fails_before_fetching(
    sim: SimulatorServer, s3_server: S3Server, tmp_path: Path, case: str
) -> None:
    bucket = s3_server.bucket()
    env = cli_env(sim, s3_server, f"s3://{bucket}/coc", tmp_path)
    changes, variable = _bad(s3_server, case)
    env |= changes
    sim.stats.reset()
    done = run([str(BIN / "coc-etl"), "ingest", DAY.isoformat()], env)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coc-etl: configuration error:"), lines
    assert variable in lines[0]
    assert "Traceback" not in done.stderr
    secrets = {s3_server.secret_access_key, SK, changes.get("AWS_SECRET_ACCESS_KEY", SK)}
    for secret in secrets:
        assert secret not in done.stdout + done.stderr
    assert sim.stats.total == 0  # the COC API was asked nothing
    assert s3_server.keys(bucket) == []  # nothing written
    assert not (tmp_path / "coc.duckdb").exists()


def test_check_access_names_the_variable_for_each_failure(s3_server: S3Server) -> None:
    bucket = s3_server.bucket()
    check_access(f"s3://{bucket}/coc", s3_server.settings())
    with pytest.raises(ConfigError, match="bucket 'nope-nope' does not exist"):
        check_access("s3://nope-nope/coc", s3_server.settings())
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY") as info:
        check_access(f"s3://{bucket}/coc", s3_server.settings(secret_access_key="not-it-123"))
    assert "not-it-123" not in str(info.value)
    assert [k for k in s3_server.keys(bucket) if not k.endswith("/")] == []
