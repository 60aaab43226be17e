"""One ingestion in a fresh process, for the memory measurement: ``python -m bench.rss_child``.

Imports what the plain function path needs, notes the resident set size right then (the
floor: interpreter, pyarrow, httpx, aiohttp, msgspec), runs ``ingest_days`` for one day,
and prints one JSON line with the rows and the process's peak RSS (``VmHWM``; see
``bench.core.peak_rss_bytes`` for why not ``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date

from bench.core import peak_rss_bytes, rss_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rss_child")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--day", type=date.fromisoformat, required=True)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--concurrency", type=int)
    args = parser.parse_args(argv)

    from pipelines.coc.settings import DEFAULT_CONCURRENCY, ClientSettings
    from pipelines.ingest import ingest_days
    from pipelines.settings import WarehouseSettings

    floor, floor_peak = rss_bytes(), peak_rss_bytes()
    settings = ClientSettings(
        endpoint=args.endpoint,
        max_rps=None,
        concurrency=args.concurrency or DEFAULT_CONCURRENCY,
    )
    warehouse = WarehouseSettings(
        warehouse=args.warehouse, duckdb_path=f"{args.warehouse}/coc.duckdb"
    )
    started = time.perf_counter()
    result = ingest_days(settings, warehouse, [args.day])[0]
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": result.rows,
                "seconds": seconds,
                "floor_rss": floor,
                "floor_peak": floor_peak,
                "peak_rss": peak_rss_bytes(),
                "rss_at_end": rss_bytes(),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
