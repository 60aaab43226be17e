"""Every way a command can fail ends with the README's exit code and one line, never a
traceback: 2 configuration or target, 3 the COC API, 4 storage or build, 141 a reader that
closed the pipe (silent), 143 SIGTERM. Real processes: ``coc-etl`` against the simulator,
real mounts (a full and a read-only tmpfs, as root), moto's S3 server for object storage.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from tests.support.cli_env import cli_env
from tests.support.cli_run import COC_ETL, ROOT, one_line_error, run

AK = "EXITAK"
SK = "exit-codes-secret-key-0123456789abcdef"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = "2026-11-18"

if TYPE_CHECKING:
    from tests.support.s3server import S3Server


pytestmark = pytest.mark.simulator(
    SimConfig(seed=11, days=3, now=NOW, tickets_per_day=(3, 4), max_batch_size=60), ak=AK, sk=SK
)


@pytest.fixture(scope="module")
def warehouse(module_sim: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local warehouse holding one day, and its coc.duckdb."""
    root = tmp_path_factory.mktemp("exits") / "wh"
    done = run([COC_ETL, "ingest", DAY], cli_env(module_sim, root, ak=AK, sk=SK))
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[object]:
    """``mount(options)``: a fresh tmpfs mounted with ``options``; unmounted afterwards."""
    mounted: list[Path] = []

    def make(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


# -- 2: configuration, arguments, the target -------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "needle"), [("s3://b/../x", "'..' segment"), ("s3://b/a//b", "empty segment")]
)
def test_an_s3_warehouse_with_a_path_segment_exits_2(tmp_path: Path, uri: str, needle: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COC_", "AWS_"))}
    env |= {"COC_WAREHOUSE": uri, "COC_DUCKDB": str(tmp_path / "coc.duckdb")}
    done = run([COC_ETL, "warehouse"], env)
    one_line_error(done, 2, f"COC_WAREHOUSE='{uri}'", needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("port", ["65536", "-1", "0"])
def test_a_dashboard_port_outside_1_to_65535_exits_2_naming_it(tmp_path: Path, port: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COC_")}
    done = run([COC_ETL, "dashboard", "--port", port], env)
    assert done.returncode == 2, done.stderr
    assert f"--port: must be a TCP port within 1..65535, got {port}" in done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after the usage line
    assert "Traceback" not in done.stderr and "--host" not in last, done.stderr


def test_coc_duckdb_on_a_read_only_mount_exits_2_naming_it(
    sim: SimulatorServer, warehouse: Path, mount
) -> None:
    read_only = mount("size=1m,ro")
    target = read_only / "coc.duckdb"
    env = cli_env(sim, warehouse, ak=AK, sk=SK, COC_DUCKDB=str(target))
    for command in (["warehouse"], ["warehouse", "--rebuild"]):
        done = run([COC_ETL, *command], env)
        one_line_error(done, 2, f"COC_DUCKDB='{target}'", "Read-only file system", secrets=(SK,))


# -- 4: storage and build --------------------------------------------------------------------


def test_a_full_disk_during_the_build_exits_4_and_leaves_no_build_file(
    sim: SimulatorServer, warehouse: Path, mount
) -> None:
    small = mount("size=64k")
    target = small / "coc.duckdb"
    env = cli_env(sim, warehouse, ak=AK, sk=SK, COC_DUCKDB=str(target))
    done = run([COC_ETL, "warehouse", "--rebuild"], env)
    err = one_line_error(done, 4, "write error", "coc.duckdb is as the last finished build left")
    assert "No space left on device" in err or "space" in err.lower(), err
    assert list(small.glob("coc.duckdb*")) == [], "no half-built DuckDB file left"


# -- 141: a reader that goes away ------------------------------------------------------------


def test_report_into_a_closed_pipe_is_silent(sim: SimulatorServer, warehouse: Path) -> None:
    env = cli_env(sim, warehouse, ak=AK, sk=SK)
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head` that has already read its lines and gone
    try:
        done = subprocess.run(
            [COC_ETL, "report"],
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    finally:
        os.close(write_end)
    assert done.stderr == "" and done.returncode == 141


# -- object storage: wrong keys, the store gone --------------------------------------------------


@pytest.fixture(scope="module")
def s3_warehouse(
    module_sim: SimulatorServer, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """A day ingested into a bucket of moto's S3 server: the environment that reaches it."""
    home = tmp_path_factory.mktemp("s3exits")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COC_", "DAGSTER_", "AWS_"))}
    env |= s3_server.env(f"s3://{s3_server.bucket()}/coc") | {
        "COC_ENDPOINT": module_sim.url,
        "COC_AK": AK,
        "COC_SK": SK,
        "COC_MAX_RPS": "0",
        "COC_DUCKDB": str(home / "coc.duckdb"),
        "DAGSTER_HOME": str(home),
    }
    done = run([COC_ETL, "ingest", DAY], env)
    assert done.returncode == 0, done.stderr
    return env


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_warehouse_command_with_wrong_keys_exits_2_naming_the_variable(
    s3_warehouse: dict[str, str], s3_server: S3Server
) -> None:
    wrong = "wrong-secret-0123456789abcdefXYZ"
    before = Path(s3_warehouse["COC_DUCKDB"]).read_bytes()
    done = run([COC_ETL, "warehouse"], s3_warehouse | {"AWS_SECRET_ACCESS_KEY": wrong})
    one_line_error(
        done, 2, "AWS_SECRET_ACCESS_KEY", secrets=(wrong, s3_server.secret_access_key, SK)
    )
    assert Path(s3_warehouse["COC_DUCKDB"]).read_bytes() == before


@pytest.mark.parametrize("command", [["warehouse"], ["report"]])
def test_a_store_that_is_down_is_named_as_the_reason(
    s3_warehouse: dict[str, str], s3_server: S3Server, command: list[str]
) -> None:
    down = s3_warehouse | {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}"}
    before = Path(s3_warehouse["COC_DUCKDB"]).read_bytes()
    done = run([COC_ETL, *command], down)
    assert done.returncode in (2, 4), done.stderr
    err = one_line_error(done, done.returncode, secrets=(s3_server.secret_access_key, SK))
    assert "cannot be read as a DuckDB file" not in err  # COC_DUCKDB is not what failed
    assert Path(s3_warehouse["COC_DUCKDB"]).read_bytes() == before


def test_report_with_the_objects_gone_exits_4_with_the_reason(
    s3_warehouse: dict[str, str], s3_server: S3Server
) -> None:
    bucket = s3_warehouse["COC_WAREHOUSE"].removeprefix("s3://").split("/")[0]
    client = s3_server.client()
    gone = {
        key: client.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key in s3_server.keys(bucket)
        if key.endswith(".parquet")
    }
    for key in gone:
        client.delete_object(Bucket=bucket, Key=key)
    try:
        done = run([COC_ETL, "report"], s3_warehouse)
    finally:
        for key, body in gone.items():
            client.put_object(Bucket=bucket, Key=key, Body=body)
    err = one_line_error(done, 4, "reading the warehouse's data", secrets=(SK,))
    assert "Traceback" not in err and "cannot be read as a DuckDB file" not in err


# -- 143: SIGTERM during a build ------------------------------------------------------------------


def _terminate_during_the_build(args: list[str], env: dict[str, str], duckdb: Path):
    """Start ``args``; once its build file appears, send SIGTERM; the finished process."""
    proc = subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 180
        while not list(duckdb.parent.glob(f"{duckdb.name}.tmp-{proc.pid}-*")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the build never started"
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_sigterm_during_a_build_exits_143_and_keeps_the_previous_file(
    sim: SimulatorServer, warehouse: Path, tmp_path: Path
) -> None:
    target = tmp_path / "coc.duckdb"
    env = cli_env(sim, warehouse, ak=AK, sk=SK, COC_DUCKDB=str(target))
    assert run([COC_ETL, "warehouse"], env).returncode == 0
    before = target.read_bytes()

    done = _terminate_during_the_build([COC_ETL, "warehouse", "--rebuild"], env, target)

    one_line_error(
        done, 143, "terminated (SIGTERM)", "coc.duckdb is as the last finished build left it"
    )
    assert target.read_bytes() == before
    assert list(tmp_path.glob("coc.duckdb.tmp-*")) == []


def test_sigterm_during_the_build_after_publishing_names_the_day_and_stale_marts(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    root = tmp_path / "wh"
    env = cli_env(sim, root, ak=AK, sk=SK)

    done = _terminate_during_the_build([COC_ETL, "ingest", DAY], env, root / "coc.duckdb")

    assert done.returncode == 143, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr, done.stderr
    assert last.startswith("coc-etl: terminated (SIGTERM); published before it stopped: "), last
    assert DAY in last and "marts stale" in last, last


@pytest.mark.slow
def test_a_store_killed_during_a_multi_day_ingest_exits_4_naming_what_was_published(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    from tests.support.s3server import S3Server

    with S3Server.start() as store:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COC_", "AWS_"))}
        env |= store.env(f"s3://{store.bucket()}/coc") | {
            "COC_ENDPOINT": sim.url,
            "COC_AK": AK,
            "COC_SK": SK,
            "COC_MAX_RPS": "0",
            "COC_DUCKDB": str(tmp_path / "coc.duckdb"),
            "DAGSTER_HOME": str(tmp_path),
        }
        sim.faults.latency_ms = 30  # days long enough to kill the store in the middle
        proc = subprocess.Popen(
            [COC_ETL, "ingest", DAY, "--to", "2026-11-20"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # the first day is published
            assert first.startswith(f"{DAY}:"), (first, proc.stderr and proc.stderr.read())
            os.kill(store.pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=300)
        finally:
            sim.faults.reset()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 4, err
    assert "Traceback" not in err and store.secret_access_key not in out + err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("coc-etl: write error: "), last
    assert f"published before it stopped: {DAY}" in last, last


#: ``coc-etl`` whose build is stopped by SIGTERM while DuckDB runs a query: DuckDB swallows
#: the ``KeyboardInterrupt`` the signal raises and raises its own error instead, as here
INTERRUPTED_BUILD = """
import os, signal, sys, time
import warehouse.build

def interrupted_build(*args, **kwargs):
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
    except KeyboardInterrupt:
        raise RuntimeError("Query interrupted") from None

warehouse.build.build_locked = interrupted_build
from coc_etl.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        (["warehouse"], "coc.duckdb is as the last finished build left it"),
        (["ingest", DAY], f"published before it stopped: {DAY} (coc.duckdb NOT rebuilt (marts"),
    ],
    ids=["warehouse", "ingest"],
)
def test_a_query_interrupted_by_sigterm_exits_143_saying_what_is_published_or_stale(
    sim: SimulatorServer, tmp_path: Path, command: list[str], needle: str
) -> None:
    env = cli_env(sim, tmp_path / "wh", ak=AK, sk=SK)
    done = run([sys.executable, "-c", INTERRUPTED_BUILD, *command], env)
    assert done.returncode == 143, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("coc-etl: terminated (SIGTERM)") and needle in last, last
