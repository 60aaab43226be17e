"""3. Unthrottled end to end on a day of ~250,000 instances, the simulator in another process.

Per round, one after the other on the same simulator: the raw fetch (``raw_fetch``), the
product's plain function path (``ingest_days``), the product's Dagster asset (the ingestion
multi-asset materialized in-process, checks included), and dlt (``dlt_peer``, in a child
process, its import time excluded). Each reports instances/s = the day's instances / wall
seconds; ratios are taken round by round. The raw fetch of the first round keeps the
instance pages for the flatten measurement.
"""

from __future__ import annotations

import json
import logging
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq

from bench.core import Row, Scale, Section, Spread, Stopwatch, Target, ratios, scratch_dir
from bench.day import DAY, BenchDay, simulator_process, sized_day
from bench.raw_fetch import day_requests, fetch_pages
from pipelines.coc.metrics import RequestMetrics
from pipelines.coc.settings import DEFAULT_CONCURRENCY, ClientSettings
from pipelines.ingest import ingest_days
from pipelines.settings import WarehouseSettings

#: what measurement 4 reuses: the instance pages of the day, fetched once
BatchPages = list[tuple[str, int, bytes]]


def landed_rows(warehouse: Path) -> int:
    folder = warehouse / "execution_instances" / f"dt={DAY.isoformat()}"
    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob("*.parquet"))


def run_plain(endpoint: str, warehouse: Path, **options: Any) -> tuple[float, int, RequestMetrics]:
    settings = ClientSettings(endpoint=endpoint, max_rps=None, concurrency=DEFAULT_CONCURRENCY)
    wh = WarehouseSettings(warehouse=str(warehouse), duckdb_path=str(warehouse / "coc.duckdb"))
    with Stopwatch() as watch:
        result = ingest_days(settings, wh, [DAY], **options)[0]
    return watch.seconds, result.rows, result.http


def run_dagster(endpoint: str, warehouse: Path) -> tuple[float, int]:
    from dagster import DagsterInstance, materialize

    from assets.ingestion import build_ingestion_asset
    from assets.partitions import daily_partitions
    from assets.resources import CocApiResource, WarehouseResource

    asset = build_ingestion_asset(daily_partitions("UTC"))
    resources = {
        "coc": CocApiResource(endpoint=endpoint, max_rps="0", concurrency=str(DEFAULT_CONCURRENCY)),
        "warehouse": WarehouseResource(warehouse=str(warehouse)),
    }
    with DagsterInstance.ephemeral() as instance, Stopwatch() as watch:
        result = materialize(
            [asset],
            partition_key=DAY.isoformat(),
            resources=resources,
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            raise_on_error=True,
        )
    if not result.success:
        raise RuntimeError("the Dagster materialization failed")
    return watch.seconds, landed_rows(warehouse)


def run_dlt(endpoint: str, day: BenchDay, workdir: Path) -> dict[str, Any]:
    start, end = day.window
    command = [
        sys.executable,
        "-m",
        "bench.dlt_peer",
        "--endpoint",
        endpoint,
        "--start-ms",
        str(start),
        "--end-ms",
        str(end),
        "--workdir",
        str(workdir),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dlt failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _quiet_dagster() -> None:
    for name in ("dagster", "dagster.code_server", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


class CpuMeter:
    """CPU seconds spent during a run: this process, its waited-for children (a flatten
    worker, dlt), and the simulator; against the wall time they say who was the bottleneck
    (on 2 cores, client and simulator each have one)."""

    def __init__(self, simulator_pid: int) -> None:
        self.simulator = psutil.Process(simulator_pid)

    def snapshot(self) -> tuple[float, float, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        sim = self.simulator.cpu_times()
        return (
            me.ru_utime + me.ru_stime,
            children.ru_utime + children.ru_stime,
            sim.user + sim.system,
        )

    def measure(self, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        before = self.snapshot()
        found = run()
        after = self.snapshot()
        client, children, sim = (b - a for a, b in zip(before, after, strict=True))
        found.update(
            cpu_client_s=round(client, 3),
            cpu_children_s=round(children, 3),
            cpu_simulator_s=round(sim, 3),
        )
        return found


def _cpu_note(run: dict[str, Any]) -> str:
    """CPU per wall second (cores busy) of the client and of the simulator."""
    wall = run["seconds"]
    client = run["cpu_client_s"] + run["cpu_children_s"]
    text = f"{wall:.2f} s wall; cores busy: client {client / wall:.2f}"
    if run["cpu_children_s"] > 0.05 * wall:
        text += f" (child processes {run['cpu_children_s'] / wall:.2f})"
    return text + f", simulator {run['cpu_simulator_s'] / wall:.2f}"


def measure(scale: Scale, keep_pages: dict[str, BatchPages]) -> Section:
    """``keep_pages`` receives the instance pages of the day under ``"pages"``."""
    section = Section(name="end_to_end", title="3 end to end (unthrottled)")
    _quiet_dagster()
    day = sized_day(scale.e2e_instances)
    instances = day.instances
    requests = day_requests(day)
    minimal = day.minimal_requests()
    dlt_minimal = day.minimal_requests(query_end_ms=day.window[1] - 1)
    keys = ["raw", "plain", "dagster", "dlt"]
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    with (
        scratch_dir("e2e") as root,
        simulator_process(scale.e2e_instances, log=root / "simulator.log") as simulator,
    ):
        endpoint = simulator.url
        meter = CpuMeter(simulator.pid)

        def raw() -> dict[str, Any]:
            with Stopwatch() as watch:
                fetched = fetch_pages(endpoint, requests, concurrency=DEFAULT_CONCURRENCY)
            return {"seconds": watch.seconds, "requests": fetched.requests, "bytes": fetched.bytes}

        def plain(name: str, **options: Any) -> Callable[[], dict[str, Any]]:
            def run() -> dict[str, Any]:
                wall, rows, counted = run_plain(endpoint, root / name, **options)
                return {"seconds": wall, "rows": rows, "requests": counted.requests}

            return run

        def dagster(name: str) -> Callable[[], dict[str, Any]]:
            def run() -> dict[str, Any]:
                wall, rows = run_dagster(endpoint, root / name)
                return {"seconds": wall, "rows": rows}

            return run

        def peer(name: str) -> Callable[[], dict[str, Any]]:
            return lambda: run_dlt(endpoint, day, root / name)

        # not timed: the pages for measurement 4, and a first pass over every code path of
        # client, product and server, so that round 1 is not the one that pays for it
        keep_pages["pages"] = fetch_pages(
            endpoint, requests, concurrency=DEFAULT_CONCURRENCY, keep=True
        ).batch_pages
        run_plain(endpoint, root / "warm-up")
        shutil.rmtree(root / "warm-up", ignore_errors=True)
        for n in range(scale.repeats):
            variants: dict[str, Callable[[], dict[str, Any]]] = {
                "raw": raw,
                "plain": plain(f"plain-{n}"),
                "dagster": dagster(f"dagster-{n}"),
                "dlt": peer(f"dlt-{n}"),
            }
            for key in keys:
                runs[key].append(meter.measure(variants[key]))
                for leftover in root.glob(f"*-{n}"):
                    shutil.rmtree(leftover, ignore_errors=True)

    seconds = {k: [r["seconds"] for r in v] for k, v in runs.items()}
    rate = {k: [instances / s for s in v] for k, v in seconds.items()}
    complete = {
        key: all(r["rows"] == instances for r in runs[key]) for key in seconds if key != "raw"
    }
    section.detail = {
        "instances": instances,
        "tickets": len(day.tickets),
        "concurrency": DEFAULT_CONCURRENCY,
        "minimal": minimal,
        "raw_requests": len(requests),
        "dlt_minimal": dlt_minimal,
        "runs": runs,
        "complete": complete,
    }
    names = {
        "raw": "raw fetch (bytes only)",
        "plain": "product, plain function",
        "dagster": "product, Dagster asset",
        "dlt": "dlt rest_api -> duckdb",
    }
    for key, name in names.items():
        if key not in seconds:
            continue
        mid = sorted(runs[key], key=lambda r: r["seconds"])[len(runs[key]) // 2]
        note = _cpu_note(mid)
        if key == "raw":
            note = f"{len(requests)} requests; " + note
        if key == "dlt":
            note += (
                f"; extract {mid['extract_s']:.1f} s, normalize {mid['normalize_s']:.1f} s, "
                f"load {mid['load_s']:.1f} s, peak RSS {mid['peak_rss'] / 2**20:.0f} MiB"
            )
        if key in complete and not complete[key]:
            note += "; ROWS MISSING OR EXTRA"
        section.rows.append(
            Row(metric=f"{name}: instances/s", spread=Spread.of(rate[key]), unit="/s", note=note)
        )
    for key, label in (("plain", "plain"), ("dagster", "Dagster")):
        for base, bound in (("raw", 0.7), ("dlt", 8.0)):
            section.rows.append(
                Row(
                    metric=f"product ({label}) / {'raw fetch' if base == 'raw' else base}",
                    spread=Spread.of(ratios(rate[key], rate[base])),
                    unit="×",
                    target=Target(">=", bound),
                    passed_override=None if complete[key] else False,
                    note="" if complete[key] else "ROWS MISSING OR EXTRA",
                )
            )
    dlt_requests = [r["requests"] / dlt_minimal for r in runs["dlt"]]
    section.rows.append(
        Row(
            metric="dlt: requests / minimal",
            spread=Spread.of(dlt_requests),
            unit="×",
            note=f"{runs['dlt'][0]['requests']} requests / {dlt_minimal} minimal",
        )
    )
    plain_requests = [r["requests"] / minimal for r in runs["plain"]]
    section.rows.append(
        Row(
            metric="product: requests / minimal",
            spread=Spread.of(plain_requests),
            unit="×",
            target=Target("=", 1.0),
        )
    )
    return section
