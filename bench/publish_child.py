"""One measurement of the publish path and of the build, in a process of its own.

    python -m bench.publish_child ROOT ROWS DAYS [--repeat N] [--profile FOLDER]

Run with ``PYTHONPATH`` pointing at the code to measure first (this tree, or a copy of
another commit's ``pipelines`` and ``warehouse``): writes DAYS-1 days of ROWS instances
(not timed), then times publishing the last day (a first run), a full build of
``coc.duckdb``, a re-run that replaces the day and an incremental build after it. Then,
``--repeat`` N > 1: N-1 more re-runs of the day and first runs of N-1 new days (the same
rows under later dates), so that the publish steps, short beside the machine's noise, are
each the median of N measurements. Prints one JSON line: the wall seconds and the CPU
seconds (user + system, every thread of the process: Arrow's, delta-rs's and DuckDB's
included) of each step, every measurement of the repeated steps, and the folder of the code
it ran (the parent checks it). With ``--profile``,
each step runs under cProfile and its statistics go to ``FOLDER/<step>.pstats``. Its own
``bench`` code only generates the data.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import pipelines
from bench.synthetic import day_tables, vocabulary
from pipelines.lake.day_writer import DayWriter
from warehouse.build import build_warehouse


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, all its threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.publish_child")
    parser.add_argument("root")
    parser.add_argument("rows", type=int)
    parser.add_argument("days", type=int)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args(argv)
    root, rows, days = args.root, args.rows, args.days
    rng = np.random.default_rng(4)
    vocab = vocabulary(rng)
    last = dt.date(2026, 11, 25)
    tables = {
        d: day_tables(last - dt.timedelta(days=d), rows, vocab, rng, first_id=1_000 + d * rows * 2)
        for d in range(days)
    }
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    each: dict[str, dict[str, list[float]]] = {"wall": {}, "cpu": {}}

    def timed(step: str, work: Callable[[], object]) -> None:
        profile = cProfile.Profile() if args.profile is not None else None
        started_cpu, started = cpu_seconds(), time.perf_counter()
        if profile is not None:
            profile.enable()
        work()
        if profile is not None:
            profile.disable()
        each["wall"].setdefault(step, []).append(time.perf_counter() - started)
        each["cpu"].setdefault(step, []).append(cpu_seconds() - started_cpu)
        if profile is not None and len(each["cpu"][step]) == 1:
            args.profile.mkdir(parents=True, exist_ok=True)
            profile.dump_stats(args.profile / f"{step}.pstats")

    def publish(day_offset: int) -> None:
        """Publish the rows of day ``day_offset`` (a negative one: those of the last day)."""
        with DayWriter(root=root, day=last - dt.timedelta(days=day_offset)) as writer:
            for name, table in tables[max(day_offset, 0)].items():
                writer.write(name, table)
            writer.commit()

    def build() -> None:
        build_warehouse(warehouse=root, duckdb_path=f"{root}/coc.duckdb")

    for d in range(1, days):
        publish(d)
    timed("publish", lambda: publish(0))
    timed("build_full", build)
    timed("republish", lambda: publish(0))
    timed("build_incremental", build)
    for n in range(1, args.repeat):
        timed("republish", lambda: publish(0))
        timed("publish", lambda n=n: publish(-n))  # type: ignore[misc]
    for metric, steps in each.items():
        found = wall if metric == "wall" else cpu
        found.update({step: statistics.median(seconds) for step, seconds in steps.items()})
    code = Path(pipelines.__file__).resolve().parents[1]  # the tree measured
    print(json.dumps({"wall": wall, "cpu": cpu, "each": each, "code": str(code)}))


if __name__ == "__main__":
    main()
