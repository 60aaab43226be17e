"""Helper process for ``test_lake.py``: publish days of planted data, optionally build.

    python lake_writer.py DAY TAG ROWS [REPEAT] [--build]

The warehouse comes from the documented variables (``COC_WAREHOUSE``, ``AWS_*``,
``COC_DUCKDB``). Each of REPEAT rounds publishes DAY with ROWS instances tagged TAG (the
round number appended when repeating, and ROWS alternating with 2/3 of it), then builds
``coc.duckdb`` with ``--build``. Never run by pytest itself.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

from pipelines.parquet import DayWriter, warehouse_publisher
from pipelines.settings import warehouse_settings_from_env
from tests.integration.parquet_crash_writer import write_day
from warehouse.build import build_locked


def main(day: dt.date, tag: str, rows: int, repeat: int, build: bool) -> None:
    wh = warehouse_settings_from_env(os.environ)
    for n in range(repeat):
        with DayWriter(day=day, publisher=warehouse_publisher(wh), lock_timeout_s=120) as w:
            size = rows if n % 2 == 0 else rows * 2 // 3
            write_day(w, f"{tag}{n}" if repeat > 1 else tag, size)
            w.commit()
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
