"""Helper process for ``test_archive_crash.py``: ingest a day, then be killed re-ingesting it
while its raw archive is being published.

    python archive_crash_writer.py ROOT DAY MARKERS MODE

Ingests DAY from a simulator (in this process) into ROOT, touches ``MARKERS/v1`` and waits
for ``MARKERS/go``; then ingests it again from a simulator whose API has drifted (other
bodies, other rows) and touches ``MARKERS/stop`` when the test must kill it:

- ``mid-archive-write``: the archive's first row group of the second run is staged, the
  run still writing;
- ``mid-archive-swap``: between the two renames of the archive's swap (the published
  archive moved away, the new one not yet in).

It then stalls until killed. Never run by pytest itself (the name does not start with test_).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

from coc_simulator import SimConfig, SimulatorServer
from pipelines import ingest, parquet, publish
from pipelines.coc.settings import ClientSettings
from pipelines.settings import WarehouseSettings

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
CONFIG = SimConfig(now=NOW, days=2, tickets_per_day=(4, 5), max_batch_size=60)


def stall(markers: Path) -> None:
    (markers / "stop").touch()
    time.sleep(60)
    sys.exit("was not killed")


def run(root: str, day: dt.date, config: SimConfig) -> None:
    with SimulatorServer(config) as sim:
        client = ClientSettings(endpoint=sim.url, max_rps=None, concurrency=4)
        wh = WarehouseSettings(warehouse=root, duckdb_path=f"{root}/coc.duckdb")
        ingest.ingest_days(client, wh, [day])


def main(root: str, day: dt.date, markers: Path, mode: str) -> None:
    run(root, day, CONFIG)
    (markers / "v1").touch()
    while not (markers / "go").exists():
        time.sleep(0.005)

    if mode == "mid-archive-write":
        write = parquet.DayWriter.write

        def write_then_stall(self: parquet.DayWriter, table: str, batch: object) -> None:
            write(self, table, batch)  # type: ignore[arg-type]
            if table == "raw_responses":
                self._flush(self._files[table], whole_groups_only=False)
                stall(markers)

        parquet.DayWriter.write = write_then_stall  # type: ignore[method-assign]
    else:

        def rename_then_stall(src: str, dst: str) -> None:
            os.rename(src, dst)
            if dst.endswith("raw_responses.old"):
                stall(markers)

        swap = publish.LocalSwap(root, exchange=lambda a, b: False, rename=rename_then_stall)
        ingest.warehouse_publisher = lambda wh: swap  # type: ignore[assignment]
    run(root, day, SimConfig(**{**CONFIG.__dict__, "drift": True}))
    sys.exit("was not killed")


if __name__ == "__main__":
    main(sys.argv[1], dt.date.fromisoformat(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
