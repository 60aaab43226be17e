"""Helper process for ``test_archive_crash.py``: ingest a day, then be killed re-ingesting it
while its raw archive and its tables are being published.

    python archive_crash_writer.py ROOT DAY MARKERS MODE

Ingests DAY from a simulator (in this process) into ROOT, touches ``MARKERS/v1`` and waits
for ``MARKERS/go``; then ingests it again from a simulator whose API has drifted (other
bodies, other rows) and touches ``MARKERS/stop`` when the test must kill it:

- ``mid-archive-write``: the archive's first row group of the second run is written to its
  own file, the run still writing (nothing committed);
- ``after-archive-commit``: the second run's archive is committed to ``raw_responses``, none
  of the day's other tables yet;
- ``before-marker``: every table but the marker (``order_batches``) committed.

It then stalls until killed. Never run by pytest itself (the name does not start with test_).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

from coc_simulator import SimConfig, SimulatorServer
from pipelines import ingest
from pipelines.coc.settings import ClientSettings
from pipelines.lake import day_writer as parquet
from pipelines.lake import tables as lake
from pipelines.settings import WarehouseSettings

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
CONFIG = SimConfig(now=NOW, days=2, tickets_per_day=(4, 5), max_batch_size=60)
#: the table after whose commit a mode stalls
STALL_AFTER = {"after-archive-commit": "raw_responses", "before-marker": "schema_drift"}


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
        commit_day = lake.Lake.commit_day

        def commit_then_stall(self: lake.Lake, table: str, *args: Any, **kwargs: Any) -> None:
            commit_day(self, table, *args, **kwargs)
            if table == STALL_AFTER[mode]:
                stall(markers)

        lake.Lake.commit_day = commit_then_stall  # type: ignore[method-assign]
    run(root, day, SimConfig(**{**CONFIG.__dict__, "drift": True}))
    sys.exit("was not killed")


if __name__ == "__main__":
    main(sys.argv[1], dt.date.fromisoformat(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
