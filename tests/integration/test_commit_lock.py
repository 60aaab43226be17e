"""The product's commit lock, on a store that cannot serialise Delta commits itself
(``COC_S3_CONDITIONAL_PUT=none``, what Huawei OBS needs), against moto's S3 server.

Several processes (``lake_writer.py``) publish different days to the same three tables, the
first commit of each meeting the others' at a barrier, then a second round each: with the
Redis lease (``COC_REDIS_URL``, every machine) and without it (the file lock, one machine).
No commit is lost: every table's newest version holds every day with its last round's rows,
and its log has exactly one commit per run, each a version of its own, nothing retried into
a duplicate. Without the lock (``LAKE_WRITER_NO_COMMIT_LOCK=1``, which makes it a no-op) this
fails: delta-rs then writes a version that another writer already wrote, silently (a "rename"
on such a store is a copy that replaces), and a run's commit is gone.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.lake.tables import Lake, storage_options
from pipelines.settings import warehouse_settings_from_env
from pipelines.transform.schemas import TABLES
from tests.support.setup_lock import ensure_cluster_services

pytestmark = pytest.mark.slow

REPO = Path(__file__).parents[2]
WRITER = Path(__file__).with_name("lake_writer.py")
DAYS = [dt.date(2026, 11, 18) - dt.timedelta(days=n) for n in range(4)]
ROUNDS = 2
ROWS = 120


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    ensure_cluster_services()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    process = subprocess.Popen(
        [
            *("redis-server", "--bind", "127.0.0.1", "--port", str(port)),
            *("--dir", str(tmp_path), "--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "no redis"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/2"
    finally:
        process.kill()
        process.wait()


def publish_at_once(env: dict[str, str], barrier: Path) -> set[str]:
    """Every day of ``DAYS`` published ``ROUNDS`` times, each day by a process of its own, the
    first commits of all at once; the run ids the writers report."""
    barrier.mkdir()
    env = {**env, "LAKE_WRITER_BARRIER": f"{barrier}:{len(DAYS)}"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WRITER), d.isoformat(), f"d{n}-", str(ROWS), str(ROUNDS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        for n, d in enumerate(DAYS)
    ]
    runs: set[str] = set()
    failures = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failures.append(err.decode(errors="replace")[-2000:])
        runs |= set(out.decode().split())
    assert failures == [], failures
    return runs


def lost_commits(env: dict[str, str], runs: set[str]) -> dict[str, object]:
    """What each table's log says against what the writers committed: {} when nothing was
    lost, else what is wrong, by table."""
    wh = warehouse_settings_from_env(env)
    lake = Lake(wh.warehouse, options=storage_options(wh.object_store))
    wrong: dict[str, object] = {}
    for table in TABLES:
        found = lake.open(table)
        assert found is not None, table
        history = [c for c in found.history() if "coc_run" in c]
        committed = Counter(str(c["coc_run"]) for c in history)
        versions = sorted(int(c["version"]) for c in found.history())
        last_rows = {d: ROWS if (ROUNDS - 1) % 2 == 0 else ROWS * 2 // 3 for d in DAYS}
        problems = {
            "runs missing from the log": sorted(runs - set(committed)),
            "runs committed twice": sorted(r for r, n in committed.items() if n > 1),
            "versions not one per commit": versions != list(range(len(versions))),
            "days missing": sorted(str(d) for d in DAYS if d not in lake.snapshot(table).files),
        }
        if table == "execution_instances":
            problems["rows of the last round"] = {
                str(d): lake.day_rows(table, d)
                for d in DAYS
                if lake.day_rows(table, d) != last_rows[d]
            }
        problems = {k: v for k, v in problems.items() if v}
        if problems:
            wrong[table] = problems
    return wrong


@pytest.fixture
def no_put_env(s3_server: object, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COC_"))}
    env["PYTHONPATH"] = str(REPO)
    env |= s3_server.env(f"s3://{s3_server.bucket()}/coc")  # type: ignore[attr-defined]
    env["COC_S3_CONDITIONAL_PUT"] = "none"
    env["COC_DUCKDB"] = str(tmp_path / "coc.duckdb")
    env["TMPDIR"] = str(tmp_path)  # this test's own file locks (the default lock folder)
    return env


@pytest.mark.parametrize("lock", ["redis", "file"])
def test_runs_committing_at_once_lose_no_commit_under_the_products_lock(
    lock: str, no_put_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = dict(no_put_env)
    if lock == "redis":
        env["COC_REDIS_URL"] = request.getfixturevalue("redis_url")
    options = storage_options(warehouse_settings_from_env(env).object_store)
    assert options is not None and "AWS_CONDITIONAL_PUT" not in options  # the store can't
    runs = publish_at_once(env, tmp_path / "barrier")
    assert len(runs) == len(DAYS) * ROUNDS
    assert lost_commits(env, runs) == {}
