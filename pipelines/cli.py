"""``coc-etl``: the command line. Parses arguments, calls the library, maps errors to exit codes.

Exit codes: 0 success, 1 unexpected failure, 2 bad configuration or arguments, 3 the COC API
failed permanently (the message names ticket, batch and marker), 4 writing the warehouse
failed. Existing data is left as it was whenever the exit code is not 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

from pipelines.coc.errors import CocError, ConfigError

if TYPE_CHECKING:
    from pipelines.ingest import DayResult

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_API, EXIT_WRITE = 0, 1, 2, 3, 4


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {value!r}") from None


def _cmd_ingest(args: argparse.Namespace) -> int:
    from pipelines.ingest import ingest_days
    from pipelines.settings import client_settings_from_env, warehouse_settings_from_env
    from warehouse.build import build_warehouse

    client = client_settings_from_env(os.environ)
    wh = warehouse_settings_from_env(os.environ)
    last = args.to or args.day
    if last < args.day:
        raise ConfigError(f"--to {last} is before the first day {args.day}")
    days = [args.day + timedelta(days=i) for i in range((last - args.day).days + 1)]

    def on_day(result: DayResult) -> None:
        print(
            f"{result.day}: {result.walk.tickets} tickets, {result.walk.batches} batches, "
            f"{result.rows} instances, {result.http.requests} requests "
            f"({result.http.retries} retries) in {result.seconds:.1f}s",
            flush=True,
        )

    ingest_days(
        client,
        wh,
        days,
        on_day=on_day,
        report=lambda m: print(m, flush=True),
    )
    built = build_warehouse(warehouse=wh.warehouse, duckdb_path=wh.duckdb_path)
    print(f"warehouse: {built.duckdb_path}")
    return EXIT_OK


def _cmd_build(args: argparse.Namespace) -> int:
    from pipelines.settings import warehouse_settings_from_env
    from warehouse.build import build_warehouse

    wh = warehouse_settings_from_env(os.environ)
    built = build_warehouse(warehouse=wh.warehouse, duckdb_path=wh.duckdb_path)
    print(f"{built.duckdb_path}: {', '.join(built.views)}")
    for table, rows in built.rows.items():
        print(f"  {table}: {rows} rows")
    return EXIT_OK


def _duckdb_path(args: argparse.Namespace) -> str:
    if args.duckdb:
        return args.duckdb
    from pipelines.settings import warehouse_settings_from_env

    return warehouse_settings_from_env(os.environ).duckdb_path


def _cmd_report(args: argparse.Namespace) -> int:
    from warehouse.report import failure_report, format_report

    path = _duckdb_path(args)
    if not os.path.exists(path):
        raise ConfigError(f"no DuckDB file at {path}: materialize a day first")
    rows = failure_report(path, days=args.days, by=args.by)
    print(format_report(rows, by=args.by))
    return EXIT_OK


#: the demo's DuckDB file (``make demo`` runs ``coc-etl demo --dir .demo``), relative to the
#: working directory: what ``coc-etl dashboard`` opens when nothing else is set
DEMO_DUCKDB = os.path.join(".demo", "warehouse", "coc.duckdb")


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from warehouse.dashboard.queries import DashboardError
    from warehouse.dashboard.serve import serve

    if args.duckdb or os.environ.get("COC_DUCKDB") or os.environ.get("COC_WAREHOUSE"):
        path = _duckdb_path(args)
    else:
        path = DEMO_DUCKDB
    try:
        serve(duckdb_path=path, host=args.host, port=args.port)
    except DashboardError as exc:
        print(f"coc-etl dashboard: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo

    return run_demo(base=args.dir, days=args.days, seed=args.seed)


def _cmd_simulator(args: argparse.Namespace) -> int:
    from coc_simulator.cli import main as simulator_main

    return simulator_main(args.options, prog="coc-etl simulator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coc-etl", description="Huawei Cloud COC script orders into Parquet and DuckDB."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    # its options belong to coc_simulator, which is imported only when this command runs
    p = sub.add_parser(
        "simulator",
        help="run the embedded COC API simulator (options: coc-etl simulator --help)",
        add_help=False,
    )
    p.set_defaults(handler=_cmd_simulator)

    p = sub.add_parser("ingest", help="ingest day(s) without Dagster, then rebuild coc.duckdb")
    p.add_argument("day", type=_day, help="first day, YYYY-MM-DD (in COC_TIMEZONE)")
    p.add_argument("--to", type=_day, help="last day, inclusive (default: the first day)")
    p.set_defaults(handler=_cmd_ingest)

    p = sub.add_parser("build-warehouse", help="(re)build coc.duckdb over the Parquet")
    p.set_defaults(handler=_cmd_build)

    p = sub.add_parser("report", help="print failure rates from coc.duckdb")
    p.add_argument("--days", type=int, default=7, help="how many recent days (default 7)")
    p.add_argument("--by", choices=("region", "zone", "application", "script"), default="region")
    p.add_argument("--duckdb", help="the DuckDB file (default: COC_DUCKDB or the warehouse's)")
    p.set_defaults(handler=_cmd_report)

    p = sub.add_parser("dashboard", help="serve the read-only dashboard over coc.duckdb")
    p.add_argument("--port", type=int, default=8501, help="default 8501")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    p.add_argument(
        "--duckdb",
        help="the DuckDB file (default: COC_DUCKDB, the warehouse's, "
        f"else the demo's {DEMO_DUCKDB})",
    )
    p.set_defaults(handler=_cmd_dashboard)

    p = sub.add_parser("demo", help="simulator + Dagster + DuckDB on this machine")
    p.add_argument("--dir", default=".demo", help="where the demo's data goes (default .demo)")
    p.add_argument("--days", type=int, default=7, help="daily partitions to materialize")
    p.add_argument("--seed", type=int, default=7, help="simulator seed")
    p.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "simulator":
        args.options = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = time.monotonic()
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(f"coc-etl: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CocError as exc:
        print(f"coc-etl: COC API error: {exc}", file=sys.stderr)
        return EXIT_API
    except KeyboardInterrupt:
        print("coc-etl: interrupted; published data is unchanged", file=sys.stderr)
        return 130
    except Exception as exc:
        from pipelines.parquet import WriteError

        if isinstance(exc, WriteError):
            print(f"coc-etl: write error: {exc}", file=sys.stderr)
            return EXIT_WRITE
        raise
    finally:
        logging.getLogger(__name__).debug("done in %.1fs", time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
