"""One warehouse build in a fresh process, for time and memory: ``python -m bench.build_child``.

Runs ``build_warehouse`` once (incremental unless ``--rebuild``; ``--changed`` names the days
a run just wrote) and prints one JSON line: wall seconds, the copy's seconds, the build's
kind, the days recomputed, the file's size and the process's peak RSS (``VmHWM``) with the
floor measured before the build (interpreter, DuckDB, pyarrow imported).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date

from bench.core import peak_rss_bytes, rss_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.build_child")
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--changed", type=date.fromisoformat, nargs="*", default=[])
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)

    from warehouse.build import build_warehouse

    floor = rss_bytes()
    duckdb_path = os.path.join(args.warehouse, "coc.duckdb")
    started = time.perf_counter()
    built = build_warehouse(
        warehouse=args.warehouse,
        duckdb_path=duckdb_path,
        changed_days=args.changed,
        rebuild=args.rebuild,
    )
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "copy_seconds": built.copy_seconds,
                "full": built.full,
                "full_reason": built.full_reason,
                "changed_days": [d.isoformat() for d in built.changed_days],
                "rows": dict(built.rows),
                "file_bytes": os.path.getsize(duckdb_path),
                "floor_rss": floor,
                "peak_rss": peak_rss_bytes(),
                "mart_seconds": dict(built.mart_seconds),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
