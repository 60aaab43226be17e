"""``python -m bench [--quick] [--only NAME ...] [--out PATH]``: run, print, write JSON."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.core import FULL, QUICK, RESULTS_DIR, Scale, Section
from bench.report import summary, table, write_json

NAMES = (
    "request_efficiency",
    "rate_limited",
    "end_to_end",
    "flatten_write",
    "memory",
    "marts",
    "dashboard",
    "failure_shifts",
    "incremental",
    "overhead",
)


#: measurements left out of a plain ``--quick`` run
NOT_QUICK = ("incremental", "overhead")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(names: list[str], scale: Scale) -> list[Section]:
    # Imported here, not at the top: `--help` and a bad argument should not wait for
    # pandas, duckdb and Dagster to import.
    from bench import (
        dashboard,
        end_to_end,
        failure_shifts,
        flatten_write,
        incremental,
        marts,
        memory,
        overhead,
        rate_limited,
        request_efficiency,
    )

    pages: dict[str, list[tuple[str, int, bytes]]] = {}
    steps: dict[str, Callable[[], Section]] = {
        "request_efficiency": lambda: request_efficiency.measure(scale),
        "rate_limited": lambda: rate_limited.measure(scale),
        "end_to_end": lambda: end_to_end.measure(scale, pages),
        "flatten_write": lambda: flatten_write.measure(scale, pages.pop("pages", None)),
        "memory": lambda: memory.measure(scale),
        "marts": lambda: marts.measure(scale),
        "dashboard": lambda: dashboard.measure(scale),
        "failure_shifts": lambda: failure_shifts.measure(scale),
        "incremental": lambda: incremental.measure(scale),
        "overhead": lambda: overhead.measure(scale),
    }
    sections = []
    for name in names:
        _say(f"bench: {name} ...")
        started = time.perf_counter()
        try:
            section = steps[name]()
        except Exception as exc:
            traceback.print_exc()
            section = Section(name=name, title=name, error=f"{type(exc).__name__}: {exc}")
        section.seconds = time.perf_counter() - started
        _say(f"bench: {name} done in {section.seconds:.0f} s")
        sections.append(section)
    return sections


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each")
    parser.add_argument("--only", nargs="+", choices=NAMES, help="run only these measurements")
    parser.add_argument("--out", type=Path, help="JSON path (default bench/results/latest.json)")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    out = args.out or RESULTS_DIR / ("quick.json" if args.quick else "latest.json")
    names = [n for n in NAMES if n in args.only] if args.only else list(NAMES)
    if scale.quick and not args.only:
        # every build or command in a fresh process: start-up, not size, is their cost, and
        # too long for a smoke test; `--quick --only incremental overhead` runs them
        names = [n for n in names if n not in NOT_QUICK]

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # retries after 429s are part of what is measured (and counted), not news
    logging.getLogger("pipelines").setLevel(logging.ERROR)

    started_at = datetime.now(UTC)
    started = time.perf_counter()
    sections = run(names, scale)
    seconds = time.perf_counter() - started
    write_json(out, sections, quick=scale.quick, started=started_at, seconds=seconds)

    result = summary(sections)
    print(table(sections))
    print()
    print(
        f"{result['passed']} of {result['targets']} targets met"
        + (f"; missed: {len(result['missed'])}" if result["missed"] else "")
        + (f"; {len(result['errors'])} measurement(s) FAILED TO RUN" if result["errors"] else "")
    )
    print(f"took {seconds:.0f} s{' (--quick)' if scale.quick else ''}; results in {out}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
