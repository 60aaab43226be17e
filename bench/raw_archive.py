"""``python -m bench.raw_archive [--instances N] [--repeats R]``: the raw archive's cost.

One simulated day of ``N`` instances (default 250,000), served by a simulator in another
process, pre-rendered, at no rate cap. In the same run:

* fetching the day: ``ingest_days`` against the simulator (the archive captured on the way);
* replaying it: ``replay_days`` from the archive, once the simulator has stopped (a replay
  that asked the API would fail);
* the ratio of the two (target: replay at least 10 times faster);
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
from datetime import UTC, datetime
from pathlib import Path

from bench.core import RESULTS_DIR
from bench.day import DAY, simulator_process
from pipelines.coc.settings import ClientSettings
from pipelines.ingest import ingest_days
from pipelines.lake import Lake
from pipelines.replay import replay_days
from pipelines.schemas import DAY_TABLES
from pipelines.settings import WarehouseSettings

TARGET_RATIO = 10.0


def _bytes(root: Path, table: str) -> int:
    """The bytes of the day's files the table's newest Delta version names (the folder keeps
    superseded files until the vacuum)."""
    named = Lake(str(root)).snapshot(table).files.get(DAY, ())
    return sum((root / table / p).stat().st_size for p in named)


def measure(instances: int, repeats: int) -> dict[str, object]:
    scratch = Path(tempfile.mkdtemp(prefix="raw-archive-", dir=RESULTS_DIR.parent))
    wh = WarehouseSettings(warehouse=str(scratch / "wh"), duckdb_path=str(scratch / "coc.duckdb"))
    fetch_s: list[float] = []
    replay_s: list[float] = []
    with simulator_process(instances, log=scratch / "simulator.log") as sim:
        client = ClientSettings(endpoint=sim.url, max_rps=None)
        for _ in range(repeats):
            started = time.perf_counter()
            (fetched,) = ingest_days(client, wh, [DAY])
            fetch_s.append(time.perf_counter() - started)
    # the simulator is gone: a replay that asked the API would fail
    for _ in range(repeats):
        started = time.perf_counter()
        (replayed,) = replay_days(wh, [DAY])
        replay_s.append(time.perf_counter() - started)
    assert replayed.rows == fetched.rows == instances, (replayed.rows, fetched.rows)
    root = Path(wh.warehouse)
    sizes = {table: _bytes(root, table) for table in DAY_TABLES}
    tables = sum(sizes[t] for t in ("execution_instances", "script_orders", "order_batches"))
    fetch, replay = statistics.median(fetch_s), statistics.median(replay_s)
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
