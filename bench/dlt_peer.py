"""The peer: dlt's REST API source on the same simulator, loading to DuckDB.

Written as a data engineer would from dlt's documentation: one ``rest_api_source`` with the
ticket list and three dependent resources (detail, batch list, instance pages), the
instance pages walked by a small custom ``BasePaginator`` whose next marker is the last
record's ``id`` (the ticket list's: the last ``order_id``) and which stops at the first
empty page, as dlt's own examples do. Two documented speed-ups are on, because an engineer
chasing throughput would turn them on: dependent resources are ``parallelized``, and the
load files are Parquet (the default, INSERT statements into DuckDB, was ~10× slower
end to end when measured on this machine). ``end_time`` is the day's last millisecond, so
that the server's inclusive window yields exactly the day's tickets (dlt has no client-side
window check) and dlt loads the same instances as the product.

Run as a child process (``python -m bench.dlt_peer``) so that its threads, imports and
memory stay out of the bench process; prints one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from dlt.sources.rest_api import rest_api_source

from bench.core import peak_rss_bytes

ORDERS = "v1/job/script/orders"


class LastIdMarker(BasePaginator):
    """``marker`` = the ``field`` of the last record of the page; stop at an empty page."""

    def __init__(self, field: str = "id") -> None:
        super().__init__()
        self.field = field
        self.marker: Any = None

    def update_state(self, response: Any, data: list[Any] | None = None) -> None:
        if not data:
            self._has_next_page = False
        else:
            self.marker = data[-1][self.field]

    def update_request(self, request: Any) -> None:
        if request.params is None:
            request.params = {}
        request.params["marker"] = self.marker


def source(endpoint: str, start_ms: int, end_ms: int, session: Any) -> Any:
    return rest_api_source(
        {
            "client": {"base_url": endpoint.rstrip("/") + "/", "session": session},
            "resource_defaults": {"write_disposition": "replace"},
            "resources": [
                {
                    "name": "orders",
                    "endpoint": {
                        "path": ORDERS,
                        "params": {"limit": 50, "start_time": start_ms, "end_time": end_ms - 1},
                        "data_selector": "data.data",
                        "paginator": LastIdMarker("order_id"),
                    },
                },
                {
                    "name": "details",
                    "endpoint": {
                        "path": ORDERS + "/{resources.orders.execute_uuid}",
                        "data_selector": "data",
                        "paginator": "single_page",
                    },
                    "parallelized": True,
                },
                {
                    "name": "batches",
                    "endpoint": {
                        "path": ORDERS + "/{resources.orders.execute_uuid}/batches",
                        "data_selector": "data",
                        "paginator": "single_page",
                    },
                    "include_from_parent": ["execute_uuid"],
                    "parallelized": True,
                },
                {
                    "name": "instances",
                    "endpoint": {
                        "path": ORDERS
                        + "/{resources.batches._orders_execute_uuid}"
                        + "/batches/{resources.batches.batch_index}",
                        "params": {"limit": 50, "marker": 0},
                        "data_selector": "data.execute_instances",
                        "paginator": LastIdMarker("id"),
                    },
                    "include_from_parent": ["_orders_execute_uuid", "batch_index"],
                    "parallelized": True,
                },
            ],
        }
    )


def run(endpoint: str, start_ms: int, end_ms: int, workdir: str) -> dict[str, Any]:
    counter = itertools.count()
    session = Client(raise_for_status=False).session
    send = session.send

    def counted_send(*args: Any, **kwargs: Any) -> Any:
        next(counter)
        return send(*args, **kwargs)

    session.send = counted_send  # type: ignore[method-assign]
    pipeline = dlt.pipeline(
        pipeline_name="coc_dlt_bench",
        destination=dlt.destinations.duckdb(os.path.join(workdir, "dlt.duckdb")),
        dataset_name="coc",
        pipelines_dir=os.path.join(workdir, "pipelines"),
    )
    started = time.perf_counter()
    pipeline.extract(source(endpoint, start_ms, end_ms, session), loader_file_format="parquet")
    extracted = time.perf_counter()
    pipeline.normalize()
    normalized = time.perf_counter()
    pipeline.load()
    loaded = time.perf_counter()
    with pipeline.sql_client() as sql:
        rows = sql.execute_sql("SELECT count(*) FROM instances")[0][0]
    return {
        "rows": rows,
        "requests": next(counter),
        "seconds": loaded - started,
        "extract_s": extracted - started,
        "normalize_s": normalized - extracted,
        "load_s": loaded - normalized,
        "peak_rss": peak_rss_bytes(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dlt_peer")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--start-ms", type=int, required=True)
    parser.add_argument("--end-ms", type=int, required=True)
    parser.add_argument("--workdir", help="default: a temporary folder")
    args = parser.parse_args(argv)
    if args.workdir:
        result = run(args.endpoint, args.start_ms, args.end_ms, args.workdir)
    else:
        with tempfile.TemporaryDirectory() as workdir:
            result = run(args.endpoint, args.start_ms, args.end_ms, workdir)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
