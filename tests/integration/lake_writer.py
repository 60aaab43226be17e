"""Helper process for ``test_lake.py``: publish days of planted data, optionally build.

    python lake_writer.py DAY TAG ROWS [REPEAT] [--build]

The warehouse comes from the documented variables (``COC_WAREHOUSE``, ``AWS_*``,
``COC_DUCKDB``). Each of REPEAT rounds publishes DAY with ROWS instances tagged TAG (the
round number appended when repeating, and ROWS alternating with 2/3 of it), then builds
``coc.duckdb`` with ``--build``. Never run by pytest itself.

Prints the run id of each round, one per line. ``LAKE_WRITER_BARRIER=DIR:N``: the first
round's files written, wait until N writers are ready in DIR, so that their commits meet.
``LAKE_WRITER_NO_COMMIT_LOCK=1``: the product's commit lock made a no-op (what the commit-lock
test shows a lost commit without).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from pipelines.lake.day_writer import DayWriter, warehouse_publisher
from pipelines.settings import warehouse_settings_from_env
from tests.integration.parquet_crash_writer import write_day
from warehouse.build import build_locked


def _barrier(spec: str, tag: str) -> None:
    folder, _, count = spec.rpartition(":")
    (Path(folder) / f"ready-{tag}").touch()
    deadline = time.monotonic() + 120
    while len(list(Path(folder).glob("ready-*"))) < int(count):
        if time.monotonic() > deadline:
            raise SystemExit(f"barrier {spec}: the other writers never came")
        time.sleep(0.01)


def _without_commit_lock() -> None:
    from pipelines.lake.tables import Lake

    @contextlib.contextmanager
    def unlocked(self: Lake, uri: str) -> Iterator[None]:
        yield

    Lake._locked = unlocked  # type: ignore[method-assign]


def main(day: dt.date, tag: str, rows: int, repeat: int, build: bool) -> None:
    wh = warehouse_settings_from_env(os.environ)
    if os.environ.get("LAKE_WRITER_NO_COMMIT_LOCK") == "1":
        _without_commit_lock()
    barrier = os.environ.get("LAKE_WRITER_BARRIER")
    for n in range(repeat):
        with DayWriter(day=day, publisher=warehouse_publisher(wh), lock_timeout_s=120) as w:
            size = rows if n % 2 == 0 else rows * 2 // 3
            write_day(w, f"{tag}{n}" if repeat > 1 else tag, size)
            if barrier and n == 0:
                _barrier(barrier, tag)
            w.commit()
            print(w.run_id, flush=True)
        if build:
            build_locked(wh)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--build"]
    main(
        dt.date.fromisoformat(args[0]),
        args[1],
        int(args[2]),
        int(args[3]) if len(args) > 3 else 1,
        "--build" in sys.argv,
    )
