"""One measurement of the publish path and of the build, in a process of its own.

    python -m bench.publish_child ROOT ROWS DAYS

Run with ``PYTHONPATH`` pointing at the code to measure first (this tree, or a copy of
another commit's ``pipelines`` and ``warehouse``): writes DAYS-1 days of ROWS instances
(not timed), then times publishing the last day twice (a first run, then a re-run that
replaces it), then a full build of ``coc.duckdb`` and an incremental one after the re-run.
Prints one JSON line of seconds. Its own ``bench`` code only generates the data.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time

import numpy as np

from bench.synthetic import day_tables, vocabulary
from pipelines.parquet import DayWriter
from warehouse.build import build_warehouse


def main(root: str, rows: int, days: int) -> None:
    rng = np.random.default_rng(4)
    vocab = vocabulary(rng)
    last = dt.date(2026, 11, 25)
    tables = {
        d: day_tables(last - dt.timedelta(days=d), rows, vocab, rng, first_id=1_000 + d * rows * 2)
        for d in range(days)
    }

    def publish(day_offset: int) -> float:
        started = time.perf_counter()
        with DayWriter(root=root, day=last - dt.timedelta(days=day_offset)) as writer:
            for name, table in tables[day_offset].items():
                writer.write(name, table)
            writer.commit()
        return time.perf_counter() - started

    for d in range(1, days):
        publish(d)
    out: dict[str, float] = {"publish": publish(0)}
    duckdb_path = f"{root}/coc.duckdb"
    started = time.perf_counter()
    build_warehouse(warehouse=root, duckdb_path=duckdb_path)
    out["build_full"] = time.perf_counter() - started
    out["republish"] = publish(0)
    started = time.perf_counter()
    build_warehouse(warehouse=root, duckdb_path=duckdb_path)
    out["build_incremental"] = time.perf_counter() - started
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
