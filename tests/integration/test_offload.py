"""The flatten worker process: same data as in-process flattening, errors that name where."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.coc import errors
from pipelines.coc.models import RawPage
from pipelines.ingest import ingest_days
from pipelines.offload import FlattenWorker
from pipelines.parquet import WriteError
from pipelines.settings import ClientSettings, WarehouseSettings
from pipelines.simulator.data import SimConfig
from pipelines.simulator.server import SimulatorServer

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = date(2026, 11, 19)


def _tables(root: Path) -> dict[str, str]:
    out = {}
    for table in ("execution_instances", "script_orders", "order_batches"):
        (path,) = (root / table / f"dt={DAY}").glob("*.parquet")
        rows = pq.read_table(path).sort_by([(n, "ascending") for n in ("execute_uuid",)])
        out[table] = hashlib.sha256(repr(sorted(map(repr, rows.to_pylist()))).encode()).hexdigest()
    return out


def test_the_worker_writes_what_inline_flattening_writes(tmp_path: Path) -> None:
    with SimulatorServer(SimConfig(seed=9, days=2, now=NOW)) as sim:
        settings = ClientSettings(endpoint=sim.url, max_rps=None)
        results = {}
        for offload in (True, False):
            root = tmp_path / str(offload)
            wh = WarehouseSettings(warehouse=str(root), duckdb_path=str(root / "coc.duckdb"))
            (result,) = ingest_days(settings, wh, [DAY], offload=offload)
            results[offload] = result
        assert results[True].rows == results[False].rows > 1000
        assert _tables(tmp_path / "True") == _tables(tmp_path / "False")


def _worker_day(tmp_path: Path) -> tuple[FlattenWorker, Path]:
    worker = FlattenWorker(flush_rows=10)
    assert worker.wait_ready()
    worker.begin(DAY, str(tmp_path))
    return worker, tmp_path


def test_a_page_that_does_not_decode_names_ticket_batch_and_marker(tmp_path: Path) -> None:
    worker, root = _worker_day(tmp_path)
    try:
        bad = b'{"data": {"execute_instances": [{"id": 7, "gmt_created": "yesterday"}]}}'
        worker.page("T-1", 3, RawPage(body=bad, marker=150, keep=None, count=1))
        deadline = time.monotonic() + 20
        with pytest.raises(errors.ResponseError) as caught:
            while time.monotonic() < deadline:
                worker.raise_failure()
                time.sleep(0.02)
        text = str(caught.value)
        assert "ticket=T-1" in text and "batch=3" in text and "marker=150" in text
        assert "gmt_created" in text
        worker.abort()
    finally:
        worker.close()
    assert not (root / "execution_instances").exists()
    assert not list((root / "_staging").glob("*/*"))


def test_a_dead_worker_fails_the_day_clearly(tmp_path: Path) -> None:
    worker, root = _worker_day(tmp_path)
    try:
        os.kill(worker._process.pid, signal.SIGKILL)
        worker._process.join(10)
        with pytest.raises(WriteError) as caught:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                worker.page("T-1", 1, RawPage(body=b"{}", marker=0, keep=None, count=0))
                time.sleep(0.02)
        assert "ended unexpectedly" in str(caught.value)
    finally:
        worker.close()
    assert not (root / "execution_instances").exists()


def test_an_ingest_that_fails_midway_leaves_no_partition(tmp_path: Path) -> None:
    with SimulatorServer(SimConfig(seed=9, days=2, now=NOW)) as sim:
        start, end = sim.dataset.day_window(DAY)
        victim = sim.dataset.tickets_in_window(start, end, now=NOW)[5].execute_uuid
        sim.faults.update(forced={victim: 403})
        wh = WarehouseSettings(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "c.duckdb"))
        settings = ClientSettings(endpoint=sim.url, max_rps=None)
        with pytest.raises(errors.PermissionDeniedError):
            asyncio.run(asyncio.to_thread(ingest_days, settings, wh, [DAY]))
    assert not (tmp_path / "execution_instances").exists()
    assert not list((tmp_path / "_staging").glob("*/*"))


def test_a_commit_sent_before_the_error_arrived_is_refused(tmp_path: Path) -> None:
    worker, root = _worker_day(tmp_path)
    try:
        bad = b'{"data": {"execute_instances": [{"id": "seven"}]}}'
        worker.page("T-2", 1, RawPage(body=bad, marker=0, keep=None, count=1))
        worker._put(("commit",))  # as if the parent had not seen the error yet
        answers = [worker._replies.get(timeout=20)[0] for _ in range(2)]
        assert answers == ["error", "error"]
        worker.abort()
    finally:
        worker.close()
    assert not (root / "execution_instances").exists()
