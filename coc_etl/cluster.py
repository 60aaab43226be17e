"""A whole distributed deployment on loopback: ``make cluster-demo`` and the cluster test.

What runs, each a process started here and stopped by its PID (data under one temp folder)::

    redis-server         Celery broker and results (db 0, 1), rate budget and locks (db 2)
    postgres             Dagster's run, event and schedule storage
    moto_server          the warehouse's object storage: an s3:// bucket, as OBS would hold it
    coc_simulator        the COC API, rate-limited at COC_MAX_RPS like the real gateway
    dagster-webserver    the UI and the GraphQL API the backfill is submitted through
    dagster-daemon       backfills -> queued runs -> Celery tasks; run monitoring
    2 x dagster-celery   workers: each takes a run from the queue and runs it whole

The webserver, the daemon and the workers are started with the commands their systemd
units declare (``deploy/systemd/``, read by ``coc_etl/systemd_units.py``: ``ExecStart=`` with its
``${VAR}`` expanded from ``coc.env.example`` overridden by this cluster's values, ``/opt/coc``
mapped onto this checkout), so a wrong unit fails the cluster test. Redis, Postgres, moto and
the simulator start at once, each waited for in a thread; Postgres from a data folder that
``initdb`` made once per machine (copied, not made again).

Services missing on the machine are installed from Debian (``redis-server``,
``postgresql``); moto comes with the ``cluster`` extra. Given no warehouse, the cluster keeps
it in a bucket of its own moto server (``s3://coc-cluster/warehouse``), every process told
where with the documented ``AWS_*`` variables; a given ``COC_WAREHOUSE`` is used instead.

Nothing here imports Dagster: the backfill and runs are driven through the webserver's
GraphQL API, the workers found through the Celery result backend in Redis.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from coc_etl.systemd_units import service_command

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
LOCATION = "assets.definitions"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
#: seconds the processes get to end after SIGTERM, before SIGKILL
STOP_GRACE_S = 3.0
#: the bucket and prefix of the warehouse on the cluster's own moto server
S3_WAREHOUSE = "s3://coc-cluster/warehouse"
S3_REGION = "us-east-1"
_MOTO_LISTENING = re.compile(rb"Running on (http://127\.0\.0\.1:\d+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def ensure_services() -> None:
    """Install redis-server and postgresql from Debian when they are missing."""
    missing = []
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    if _postgres_bin() is None:
        missing.append("postgresql")
    if not missing:
        return
    print(f"installing {', '.join(missing)} (apt-get)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def _initdb_template(bindir: Path, as_postgres: Sequence[str]) -> Path:
    """A fresh cluster's data folder made by ``initdb`` (user ``dagster``, trust, UTF8),
    once per machine and Postgres version under the temp folder: each cluster copies it
    rather than running initdb again (seconds each time)."""
    version = bindir.parent.name
    base = Path(tempfile.gettempdir()) / f"coc-cluster-pg-template-{version}-{os.geteuid()}"
    template = base / "data"
    if (template / "PG_VERSION").is_file() and (base / "complete").is_file():
        return template
    base.mkdir(mode=0o755, exist_ok=True)
    with open(base / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one initdb at a time; the others find it done
        if (base / "complete").is_file():
            return template
        shutil.rmtree(template, ignore_errors=True)
        template.mkdir(mode=0o700)
        if as_postgres:
            shutil.chown(template, "postgres", "postgres")
        subprocess.run(
            [
                *as_postgres,
                str(bindir / "initdb"),
                "-D",
                str(template),
                "-U",
                "dagster",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (base / "complete").touch()
    return template


def _copy_tree(source: Path, target: Path) -> None:
    """``source``'s content into the (existing, empty) folder ``target``, modes kept."""
    subprocess.run(["cp", "-a", f"{source}/.", str(target)], check=True)


def _wait(what: str, ready: Any, timeout: float = 60.0, process: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s")


@dataclass
class Cluster:
    """The deployment's processes and where they listen; ``stop`` ends them all by PID."""

    root: Path
    max_rps: float
    #: "" = an s3:// warehouse on a moto server the cluster starts (``S3_WAREHOUSE``)
    warehouse: str
    simulator_args: Sequence[str] = ()
    workers: int = 2
    days_per_run: int = 1
    #: ``run_monitoring.start_timeout_seconds`` instead of deploy/dagster.yaml's (a test makes
    #: it shorter than a day's run)
    start_timeout_s: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[Any]] = field(default_factory=dict)
    #: how each process was started (``restart`` starts it again the same way)
    commands: dict[str, tuple[list[str], dict[str, Any]]] = field(default_factory=dict)
    graphql_url: str = ""
    redis_port: int = 0
    pg_dir: Path | None = None
    s3_endpoint: str = ""

    # -- starting ------------------------------------------------------------------------

    def start_services(self) -> None:
        """Redis, Postgres, the simulator (and moto); then the environment every process
        shares."""
        self.root.chmod(0o755)
        from coc_simulator.server import start_subprocess

        def simulator() -> str:
            sim, url = start_subprocess(
                ["--rate-limit", str(self.max_rps), *self.simulator_args],
                stderr=subprocess.DEVNULL,
            )
            self.processes["simulator"] = sim
            return url

        # started at once, each waited for in a thread of its own: most of their start-up
        # is waiting (initdb, a process importing its modules)
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="cluster-start") as pool:
            redis_port = pool.submit(self._start_redis)
            postgres = pool.submit(self._start_postgres)
            s3 = pool.submit(self._start_s3) if not self.warehouse else None
            sim_url = pool.submit(simulator)
            self.redis_port = redis_port.result()
            pg_url = postgres.result()
            object_store = s3.result() if s3 is not None else {}
            url = sim_url.result()
        redis = f"redis://127.0.0.1:{self.redis_port}"
        home = self.root / "dagster_home"
        home.mkdir()
        self._write_instance(home / "dagster.yaml")
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("COC_", "DAGSTER_"))
                and not (object_store and k.startswith("AWS_"))
            },
            "PATH": os.pathsep.join((str(BIN), os.environ.get("PATH", ""))),  # celery
            "DAGSTER_HOME": str(home),
            "COC_DAGSTER_PG_URL": pg_url,
            "COC_CELERY_BROKER": f"{redis}/0",
            "COC_CELERY_BACKEND": f"{redis}/1",
            "COC_WORKER_SLOTS": str(self.workers),  # each worker runs --concurrency=1
            "COC_REDIS_URL": f"{redis}/2",
            "COC_ENDPOINT": url,
            "COC_WAREHOUSE": self.warehouse,
            "COC_MAX_RPS": str(self.max_rps),
            "COC_BACKFILL_DAYS_PER_RUN": str(self.days_per_run),
            **object_store,
        }
        if "://" in self.warehouse:
            self.env["COC_DUCKDB"] = str(self.root / "coc.duckdb")

    def _write_instance(self, path: Path) -> None:
        """deploy/dagster.yaml, with this cluster's overrides."""
        if self.start_timeout_s is None:
            shutil.copy(DEPLOY / "dagster.yaml", path)
            return
        import yaml  # installed with dagster

        instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
        instance["run_monitoring"]["start_timeout_seconds"] = self.start_timeout_s
        path.write_text(yaml.safe_dump(instance, sort_keys=False))

    def _spawn(self, name: str, command: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        kwargs.setdefault("cwd", ROOT)
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with every child
            **kwargs,
        )
        log.close()
        self.processes[name] = process
        self.commands[name] = (list(command), dict(kwargs))
        return process

    def restart(self, name: str, *, down_s: float, sig: int = signal.SIGKILL) -> None:
        """Stop process ``name`` with ``sig`` (``kill -9`` by default), wait ``down_s``, and
        start it again as it was started: an outage of one service (Redis, Postgres)."""
        process = self.processes.pop(name)
        _signal(process, sig)
        process.wait()
        time.sleep(down_s)
        command, kwargs = self.commands[name]
        self._spawn(name, command, **kwargs)

    def _start_redis(self) -> int:
        port = _free_port()
        data = self.root / "redis"
        data.mkdir()
        process = self._spawn(
            "redis",
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(data),
                "--save",
                "",
                # the broker's queue and Celery's task states survive a restart: run
                # monitoring fails a started run whose task state it cannot find
                "--appendonly",
                "yes",
                "--protected-mode",
                "yes",
            ],
        )

        def ping() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")

        _wait("redis-server", ping, process=process)
        return port

    def _start_s3(self) -> dict[str, str]:
        """moto's S3 server on a port of its choosing, and the warehouse's bucket on it; the
        ``AWS_*`` variables that reach it (a fresh secret per cluster, never printed)."""
        process = self._spawn(
            "s3",
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", "0"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log = self.root / "s3.log"

        def listening() -> bool:
            found = _MOTO_LISTENING.search(log.read_bytes())
            if found:
                self.s3_endpoint = found.group(1).decode()
            return found is not None

        _wait("moto_server", listening, process=process)
        self.warehouse = S3_WAREHOUSE
        env = {
            "AWS_ACCESS_KEY_ID": "coc-cluster",
            "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(24),
            "AWS_REGION": S3_REGION,
            "AWS_ENDPOINT_URL": self.s3_endpoint,
        }
        import pyarrow.fs as pafs

        scheme, _, host = self.s3_endpoint.partition("://")
        pafs.S3FileSystem(
            access_key=env["AWS_ACCESS_KEY_ID"],
            secret_key=env["AWS_SECRET_ACCESS_KEY"],
            region=S3_REGION,
            endpoint_override=host,
            scheme=scheme,
            allow_bucket_creation=True,
        ).create_dir(S3_WAREHOUSE.removeprefix("s3://").split("/", 1)[0])
        return env

    def _start_postgres(self) -> str:
        bindir = _postgres_bin()
        if bindir is None:
            raise RuntimeError("postgresql is not installed (make cluster-demo installs it)")
        port = _free_port()
        # its own temp folder: the postgres user must reach it, whatever guards self.root
        self.pg_dir = Path(tempfile.mkdtemp(prefix="coc-cluster-pg-"))
        self.pg_dir.chmod(0o755)
        data = self.pg_dir / "data"
        data.mkdir(mode=0o700)
        as_postgres: list[str] = []
        if os.geteuid() == 0:  # postgres refuses root: run it as Debian's postgres user
            as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        _copy_tree(_initdb_template(bindir, as_postgres), data)
        if as_postgres:
            subprocess.run(["chown", "-R", "postgres:postgres", str(data)], check=True)
        process = self._spawn(
            "postgres",
            [
                *as_postgres,
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
                str(data),
                "-c",
                "fsync=off",
            ],
        )
        url = f"postgresql://dagster@127.0.0.1:{port}/postgres"

        def accepts() -> bool:
            import psycopg2  # installed with dagster-postgres

            psycopg2.connect(url, connect_timeout=1).close()
            return True

        _wait("postgres", accepts, process=process)
        return url.replace("postgresql://", "postgresql+psycopg2://")  # the driver installed

    def _spawn_unit(
        self,
        name: str,
        unit_file: str,
        *,
        instance: str | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[Any]:
        """Start a service with the command its systemd unit declares
        (``deploy/systemd/<unit_file>``), variables from ``coc.env.example`` overridden by
        this cluster's, paths moved from the install root onto this checkout."""
        command = service_command(
            unit_file,
            {**self.env, **(overrides or {})},
            root=ROOT,
            bin_dir=BIN,
            instance=instance,
        )
        env = {**self.env, **(overrides or {}), **command.environment}
        return self._spawn(name, command.argv, env=env, cwd=command.cwd)

    def start_dagster(self) -> None:
        """The webserver and the workers (the daemon comes later: ``start_daemon``), each
        with its unit's command."""
        port = _free_port()
        self._spawn_unit(
            "webserver",
            "coc-webserver.service",
            overrides={"COC_WEBSERVER_HOST": "127.0.0.1", "COC_WEBSERVER_PORT": str(port)},
        )
        for i in range(self.workers):
            name = f"worker-{chr(ord('a') + i)}"
            self._spawn_unit(name, "coc-worker@.service", instance=name)
        self.graphql_url = f"http://127.0.0.1:{port}/graphql"
        _wait(
            "dagster-webserver",
            lambda: self._graphql("{ version }").get("version"),
            timeout=180,
            process=self.processes["webserver"],
        )
        # every worker consuming before any run is launched: a run handed to Celery before
        # then would wait there, and run monitoring counts that against its start
        _wait(
            "dagster-celery workers",
            lambda: len(self.worker_settings()) == self.workers,
            timeout=120,
        )

    def start_daemon(self) -> None:
        """The daemon, with its unit's command: its first backfill tick comes at once, later
        ones every 30 s."""
        self._spawn_unit("daemon", "coc-daemon.service")

    def restart_daemon(self, *, worker_slots: int, start_timeout_s: int | None) -> None:
        """The daemon killed and started again with ``COC_WORKER_SLOTS`` and
        ``run_monitoring.start_timeout_seconds`` changed (None: deploy/dagster.yaml's): a
        test hands Celery more runs than the workers take at once."""
        process = self.processes.pop("daemon")
        _signal(process, signal.SIGKILL)
        process.wait()
        self.start_timeout_s = start_timeout_s
        self._write_instance(Path(self.env["DAGSTER_HOME"]) / "dagster.yaml")
        self.env["COC_WORKER_SLOTS"] = str(worker_slots)
        self.start_daemon()

    # -- driving -------------------------------------------------------------------------

    def _graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        answer = httpx.post(
            self.graphql_url, json={"query": query, "variables": variables or {}}, timeout=60
        )
        answer.raise_for_status()
        body = answer.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL: {body['errors'][0].get('message')}")
        return body["data"]

    def asset_keys(self) -> list[list[str]]:
        """The assets a run can materialize (not the marts, which the warehouse step
        updates: selecting them is an invalid subset)."""
        data = self._graphql("{ assetNodes { assetKey { path } isExecutable } }")
        return [node["assetKey"]["path"] for node in data["assetNodes"] if node["isExecutable"]]

    def launch_backfill(self, days: Sequence[str]) -> str:
        """A backfill of every asset over ``days``; its id."""
        data = self._graphql(
            """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
                 __typename ... on LaunchBackfillSuccess { backfillId }
                 ... on PythonError { message } ... on InvalidSubsetError { message } } }""",
            {
                "p": {
                    "partitionNames": list(days),
                    "assetSelection": [{"path": p} for p in self.asset_keys()],
                    "fromFailure": False,
                }
            },
        )["launchPartitionBackfill"]
        if data["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {data.get('message')}")
        return str(data["backfillId"])

    def launch_run(self, day: str) -> str:
        """One run of every asset for ``day``; its id."""
        data = self._graphql(
            """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
                 __typename ... on LaunchRunSuccess { run { runId } }
                 ... on PythonError { message } } }""",
            {
                "p": {
                    "selector": {
                        "repositoryLocationName": LOCATION,
                        "repositoryName": "__repository__",
                        "jobName": "__ASSET_JOB",
                        "assetSelection": [{"path": p} for p in self.asset_keys()],
                    },
                    "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]},
                }
            },
        )["launchRun"]
        if data["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"run not launched: {data.get('message') or data['__typename']}")
        return str(data["run"]["runId"])

    def runs(self, backfill_id: str | None = None) -> list[dict[str, Any]]:
        """Runs (of a backfill), with status, times (``launchTime``: handed to Celery),
        partition tags and Celery task id."""
        tags = [{"key": "dagster/backfill", "value": backfill_id}] if backfill_id else []
        data = self._graphql(
            """query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results {
                 runId status startTime endTime tags { key value }
                 stats { ... on RunStatsSnapshot { launchTime } } } } } }""",
            {"f": {"tags": tags}},
        )
        runs = data["runsOrError"]["results"]
        for run in runs:
            run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
            # when the daemon handed the run to Celery (STARTING)
            run["launchTime"] = (run.pop("stats") or {}).get("launchTime")
        return list(runs)

    def wait_runs(
        self, expected: int, backfill_id: str | None = None, timeout: float = 300
    ) -> list[dict[str, Any]]:
        """Wait until ``expected`` runs exist and all have ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs(backfill_id)
            if len(runs) >= expected and all(r["status"] in TERMINAL for r in runs):
                return runs
            time.sleep(1)
        raise RuntimeError(f"runs not finished after {timeout:.0f}s: {self.runs(backfill_id)}")

    def wait_status(self, run_id: str, statuses: set[str], timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for run in self.runs():
                if run["runId"] == run_id and run["status"] in statuses:
                    return str(run["status"])
            time.sleep(0.5)
        raise RuntimeError(f"run {run_id} not in {statuses} after {timeout:.0f}s")

    def task_state(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """The Celery task of a run, as the result backend holds it (state, worker, pid)."""
        import redis

        task_id = run["tags"].get("dagster-celery/task_id")
        if not task_id:
            return {}
        client = redis.Redis(port=self.redis_port, db=1)
        try:
            raw = client.get(f"celery-task-meta-{task_id}")
        finally:
            client.close()
        meta: dict[str, Any] = json.loads(raw) if raw else {}
        result = meta.get("result")
        if isinstance(result, dict):  # STARTED: {"pid": ..., "hostname": ...}
            meta.setdefault("worker", result.get("hostname"))
            meta["pid"] = result.get("pid")
        return meta

    def _inspect(self, *asked: str) -> list[dict[str, Any]]:
        """Celery's remote control, through the broker: each of ``asked`` (``conf``,
        ``stats``, ``active``, ``reserved``) answered by every live worker. Asked again once
        after an error (a connection that a restarted Redis closed)."""
        from celery import Celery

        for attempt in (1, 2):
            app = Celery(broker=self.env["COC_CELERY_BROKER"])
            try:
                inspect = app.control.inspect(timeout=5, limit=self.workers)
                answers: list[dict[str, Any]] = []
                for what in asked:
                    call = getattr(inspect, what)
                    answers.append((call(with_defaults=True) if what == "conf" else call()) or {})
                return answers
            except Exception as exc:  # redis-py's and kombu's connection errors
                if attempt == 2:
                    raise
                print(f"celery inspect: {type(exc).__name__}; again", flush=True)
            finally:
                app.close()
        raise AssertionError("unreachable")

    def worker_tasks(self) -> dict[str, dict[str, list[str]]]:
        """Each live worker's Celery tasks: the ones it runs (``active``) and the ones it
        took and holds for later (``reserved``), by task id."""
        active, reserved = self._inspect("active", "reserved")
        return {
            name.split("@", 1)[0]: {
                "active": [t["id"] for t in active.get(name, [])],
                "reserved": [t["id"] for t in reserved.get(name, [])],
            }
            for name in set(active) | set(reserved)
        }

    def worker_settings(self) -> dict[str, dict[str, Any]]:
        """Each live worker's Celery settings and consumer stats: ``{worker: {"conf": ...,
        "stats": ...}}``."""
        conf, stats = self._inspect("conf", "stats")
        return {
            name.split("@", 1)[0]: {"conf": conf[name], "stats": stats.get(name, {})}
            for name in conf
        }

    def run_messages(self, run_id: str) -> list[str]:
        """The messages of a run's event log, as the UI shows them (``logsForRun``)."""
        data = self._graphql(
            """query($id: ID!) { logsForRun(runId: $id, limit: 5000) {
                 __typename ... on EventConnection { events { __typename
                   ... on MessageEvent { message } } } } }""",
            {"id": run_id},
        )["logsForRun"]
        if data["__typename"] != "EventConnection":
            raise RuntimeError(f"logsForRun({run_id}): {data['__typename']}")
        return [str(e.get("message") or "") for e in data["events"]]

    def worker_of(self, run: Mapping[str, Any]) -> str:
        worker = self.task_state(run).get("worker") or "?"
        return str(worker).split("@", 1)[0]

    # -- stopping ------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM each process group we started (by its leader's PID), SIGKILL stragglers.

        Everything here is scratch (the services' data is in temp folders), so stragglers get
        a short grace: the daemon, for one, can take tens of seconds to end its threads.
        """
        for name in reversed(list(self.processes)):
            _signal(self.processes[name], signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            _signal(process, signal.SIGKILL)  # stragglers, and a group's children left over
            process.wait()
        self.processes.clear()
        if self.pg_dir is not None:
            shutil.rmtree(self.pg_dir, ignore_errors=True)
            self.pg_dir = None


def _signal(process: subprocess.Popen[Any], sig: int) -> None:
    """``sig`` to the process group that ``process`` leads, else to the process alone."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:  # not a group leader (the simulator), or gone
        if process.poll() is None:
            process.send_signal(sig)


@contextlib.contextmanager
def running_cluster(
    *,
    warehouse: str | None = None,
    max_rps: float = 100.0,
    simulator_args: Sequence[str] = (),
    workers: int = 2,
    root: Path | None = None,
    start_timeout_s: int | None = None,
) -> Iterator[Cluster]:
    """Everything started (but the daemon) in a temp folder, stopped on the way out.

    ``warehouse`` None: an ``s3://`` warehouse on the cluster's own moto server.
    """
    ensure_services()
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coc-cluster-")))
        cluster = Cluster(
            root=root,
            max_rps=max_rps,
            warehouse=warehouse or "",
            simulator_args=simulator_args,
            workers=workers,
            start_timeout_s=start_timeout_s,
        )
        try:
            cluster.start_services()
            cluster.start_dagster()
            yield cluster
        finally:
            cluster.stop()


def first_day(run: Mapping[str, Any]) -> str:
    """The first partition of a run (a backfill's runs carry a range, even of one day)."""
    tags = run["tags"]
    return str(tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition"))


def demo_days(count: int, today: str | None = None) -> list[str]:
    from datetime import date, timedelta

    last = date.fromisoformat(today) if today else date.today() - timedelta(days=1)
    return [(last - timedelta(days=count - 1 - i)).isoformat() for i in range(count)]


def main(argv: Sequence[str] | None = None) -> int:
    """``make cluster-demo``: a 7-day backfill across two workers, then the report.

    The warehouse is a bucket on a moto server started with the rest (``S3_WAREHOUSE``);
    ``COC_WAREHOUSE`` picks another (a local folder, or an ``s3://`` URI with the ``AWS_*``
    variables of its object storage).
    """
    days = demo_days(7)
    started = time.monotonic()
    print(
        "1/4 starting redis, postgres, moto (S3), the simulator, the webserver and 2 workers",
        flush=True,
    )
    with running_cluster(warehouse=os.environ.get("COC_WAREHOUSE") or None) as cluster:
        print(f"    processes: {', '.join(f'{n}={p.pid}' for n, p in cluster.processes.items())}")
        print(f"    Dagster UI: {cluster.graphql_url.removesuffix('/graphql')}")
        where = f" on moto at {cluster.s3_endpoint}" if cluster.s3_endpoint else ""
        duckdb_file = cluster.env.get("COC_DUCKDB", "under the warehouse")
        print(f"    warehouse: {cluster.warehouse}{where}; coc.duckdb: {duckdb_file}")
        print(f"2/4 backfill {days[0]}...{days[-1]}, one run per day", flush=True)
        backfill = cluster.launch_backfill(days)
        cluster.start_daemon()
        runs = cluster.wait_runs(len(days), backfill)
        print("3/4 which worker ran each run")
        for run in sorted(
            runs, key=lambda r: r["tags"].get("dagster/asset_partition_range_start", "")
        ):
            seconds = (run["endTime"] or 0) - (run["startTime"] or 0)
            print(
                f"    {first_day(run)}  {run['runId'][:8]}  "
                f"{run['status']:<8} {cluster.worker_of(run):<9} {seconds:5.1f}s"
            )
        failed = [r for r in runs if r["status"] != "SUCCESS"]
        print("4/4 the report, read back through DuckDB", flush=True)
        subprocess.run(
            [str(BIN / "coc-etl"), "report", "--days", "7"], env=cluster.env, cwd=ROOT, check=False
        )
        print(f"done in {time.monotonic() - started:.0f}s; stopping everything", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
