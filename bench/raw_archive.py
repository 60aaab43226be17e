"""``python -m bench.raw_archive [--instances N] [--repeats R]``: the raw archive's cost.

One simulated day of ``N`` instances (default 250,000), served by a simulator in another
process, pre-rendered, at no rate cap. In the same run:

* fetching the day: ``ingest_days`` against the simulator, the product's normal ingest: walk,
  flatten, write and publish the day's tables, its raw archive and its schema drift (no
  marts: ``coc-etl`` builds them once after the days, for a replay as for an ingest);
* replaying it: ``replay_days`` from the archive, once the simulator has stopped (a replay
  that asked the API would fail): the same walk answered by the archive, flatten, write and
  publish the same tables and the schema drift (the archive is kept as published);
* the ratio of the two in wall time (target: replay at least 10 times faster), and in CPU
  seconds (the fetch's process and the simulator's; the replay's process), which a machine
  shared with other work disturbs less;
* where a replay's CPU goes (``replay_split_cpu_seconds``: thread CPU of its stages, one
  more replay);
* the bytes of the day's archive against the day's Parquet tables, and per instance.

Results go to ``bench/results/raw-archive.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.core import RESULTS_DIR
from bench.day import DAY, simulator_process
from pipelines.coc.settings import ClientSettings
from pipelines.ingest import ingest_days
from pipelines.lake.tables import Lake
from pipelines.replay import replay_days
from pipelines.settings import WarehouseSettings
from pipelines.transform.schemas import DAY_TABLES

TARGET_RATIO = 10.0


def _bytes(root: Path, table: str) -> int:
    """The bytes of the day's files the table's newest Delta version names (the folder keeps
    superseded files until the vacuum)."""
    named = Lake(str(root)).snapshot(table).files.get(DAY, ())
    return sum((root / table / p).stat().st_size for p in named)


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _thread_cpu(
    acc: dict[str, float], owner: Any, name: str, label: str, clock: Any = time.thread_time
) -> Iterator[None]:
    """Add the CPU of every call of ``owner.name`` to ``acc[label]`` meanwhile (the calling
    thread's, or with ``clock=time.process_time`` the process's)."""
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return original(*args, **kwargs)
        finally:
            acc[label] = acc.get(label, 0.0) + clock() - started

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


def replay_split(wh: WarehouseSettings) -> dict[str, float]:
    """One more replay, the CPU of its stages: the archive read (process CPU: nothing else
    runs meanwhile), the loader's JSON reading (on the loader's thread for this run, not on
    Arrow's pool, so that its thread CPU is all of it), drift proof, flattening and Parquet
    writing, the drift walk of the bodies not proven, and the rest (the walk on the event
    loop: ids decoded for paging, archive lookups, the publish)."""
    import pipelines.extract.pages as pages
    import pipelines.lake.load as load
    import pipelines.lake.raw_archive as raw_archive
    import pipelines.replay as replay

    acc: dict[str, float] = {}
    stages = [
        (replay, "load_archive", "archive_read"),
        (pages, "_read", "json_read"),
        (pages, "clean_by_arrow", "drift_proof"),
        (pages, "_flattened", "flatten"),
        (pages, "_text", "join_bodies"),
        (load.InstanceLoader, "_write", "parquet_write"),
        (raw_archive.ArchivedDay, "drift", "drift_walk"),
    ]
    started = time.process_time()
    threaded_block = pages.THREADED_BLOCK
    pages.THREADED_BLOCK = 1 << 62
    with ExitStack() as stack:
        stack.callback(setattr, pages, "THREADED_BLOCK", threaded_block)
        for owner, name, label in stages:
            clock = time.process_time if label == "archive_read" else time.thread_time
            stack.enter_context(_thread_cpu(acc, owner, name, label, clock))
        replay_days(wh, [DAY])
    total = time.process_time() - started
    split = {label: round(seconds, 3) for label, seconds in acc.items()}
    split["walk_and_rest"] = round(total - sum(acc.values()), 3)
    split["total"] = round(total, 3)
    return split


def measure(instances: int, repeats: int) -> dict[str, object]:
    scratch = Path(tempfile.mkdtemp(prefix="raw-archive-", dir=RESULTS_DIR.parent))
    wh = WarehouseSettings(warehouse=str(scratch / "wh"), duckdb_path=str(scratch / "coc.duckdb"))
    fetch_s: list[float] = []
    fetch_cpu: list[float] = []
    simulator_cpu: list[float] = []
    replay_s: list[float] = []
    replay_cpu: list[float] = []
    load_before = os.getloadavg()[0]
    with simulator_process(instances, log=scratch / "simulator.log") as sim:
        client = ClientSettings(endpoint=sim.url, max_rps=None)
        for _ in range(repeats):
            sim_before, cpu_before = _process_cpu(sim.pid), time.process_time()
            started = time.perf_counter()
            (fetched,) = ingest_days(client, wh, [DAY])
            fetch_s.append(time.perf_counter() - started)
            fetch_cpu.append(time.process_time() - cpu_before)
            simulator_cpu.append(_process_cpu(sim.pid) - sim_before)
    # the simulator is gone: a replay that asked the API would fail
    for _ in range(repeats):
        cpu_before = time.process_time()
        started = time.perf_counter()
        (replayed,) = replay_days(wh, [DAY])
        replay_s.append(time.perf_counter() - started)
        replay_cpu.append(time.process_time() - cpu_before)
    split = replay_split(wh)
    load_after = os.getloadavg()[0]
    assert replayed.rows == fetched.rows == instances, (replayed.rows, fetched.rows)
    root = Path(wh.warehouse)
    sizes = {table: _bytes(root, table) for table in DAY_TABLES}
    tables = sum(sizes[t] for t in ("execution_instances", "script_orders", "order_batches"))
    fetch, replay = statistics.median(fetch_s), statistics.median(replay_s)
    both_cpu = [f + s for f, s in zip(fetch_cpu, simulator_cpu, strict=True)]
    cpu_ratio = statistics.median(both_cpu) / statistics.median(replay_cpu)
    result = {
        "bench": "raw archive: size, and replay against fetching (same run)",
        "command": f"python -m bench.raw_archive --instances {instances} --repeats {repeats}",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "instances": instances,
        "responses": fetched.responses,
        "fetch_seconds": [round(s, 3) for s in fetch_s],
        "replay_seconds": [round(s, 3) for s in replay_s],
        "replay_speedup": round(fetch / replay, 2),
        "replay_speedup_target": TARGET_RATIO,
        "replay_speedup_met": fetch / replay >= TARGET_RATIO,
        "replayed_with_the_simulator_stopped": True,
        "method": (
            "fetch: ingest_days against the simulator (another process, day pre-rendered, no "
            "rate cap): walk, flatten, write and publish the day's 3 tables, its raw archive "
            "and its schema drift. replay: replay_days from the archive with the simulator "
            "stopped: the same walk answered by the archive, flatten, write and publish the 3 "
            "tables and the schema drift (the archive kept as published; drift walked only "
            "for the bodies the loader's Arrow reading did not prove documented). Neither "
            "builds marts. Wall-time ratio of medians; CPU ratio: median fetch-process + "
            "simulator CPU over median replay-process CPU."
        ),
        "fetch_cpu_seconds": [round(s, 3) for s in fetch_cpu],
        "simulator_cpu_seconds": [round(s, 3) for s in simulator_cpu],
        "replay_cpu_seconds": [round(s, 3) for s in replay_cpu],
        "replay_cpu_speedup": round(cpu_ratio, 2),
        "replay_split_cpu_seconds": split,
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "bytes": sizes,
        "response_body_bytes": fetched.body_bytes,
        "archive_over_tables": round(sizes["raw_responses"] / tables, 3),
        "archive_bytes_per_instance": round(sizes["raw_responses"] / instances, 1),
        "archive_compression": round(fetched.body_bytes / sizes["raw_responses"], 2),
    }
    for path in sorted(scratch.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    scratch.rmdir()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_archive")
    parser.add_argument("--instances", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS_DIR / "raw-archive.json"))
    args = parser.parse_args(argv)
    result = measure(args.instances, args.repeats)
    text = json.dumps(result, indent=1)
    print(text)
    Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
