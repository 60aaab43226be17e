"""``coc-etl``: the command line. Parses arguments, calls the library, maps errors to exit codes.

Exit codes: 0 success, 1 unexpected failure, 2 bad configuration or arguments (found before
any request), 3 the COC API failed permanently (the message names ticket, batch and marker),
4 writing the warehouse failed, 130 interrupted (SIGINT), 143 terminated (SIGTERM). A day is
published whole or not at all; when a range stops early, the message names the days that
were published, and ``coc.duckdb`` is rebuilt for them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from types import FrameType
from typing import TYPE_CHECKING

from pipelines.coc.errors import CocError, ConfigError

if TYPE_CHECKING:
    from pipelines.ingest import DayResult
    from pipelines.settings import ObjectStoreSettings
    from warehouse.build import BuildResult

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_API, EXIT_WRITE = 0, 1, 2, 3, 4
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143

INGEST_HELP = """\
environment:
  COC_ENDPOINT          base URL of the COC API (required; https, or http to loopback only)
  COC_AK, COC_SK        sign requests with SDK-HMAC-SHA256, or
  COC_TOKEN             send an IAM token (not both)
  COC_PROJECT_ID        sent as x-project-id
  COC_CA_BUNDLE         CA bundle for a private certificate authority
  COC_WAREHOUSE         warehouse root: a local folder or an s3:// URI (required)
  COC_DUCKDB            the DuckDB file (default: coc.duckdb in a local COC_WAREHOUSE)
  COC_TIMEZONE          zone of the day boundaries (default UTC; fixed per warehouse)
  COC_MAX_RPS           request rate cap, 1..10000 per second, 0 = no cap (default 50)
  COC_CONCURRENCY       requests in flight, 1..256 (default 16)
  COC_MAX_ATTEMPTS      attempts per request, 1..100 (default 8)
  COC_RETRY_BUDGET_S    seconds one request may spend retrying, 1..86400 (default 600)
  COC_DAY_LOCK_TIMEOUT_S  seconds to wait for another run of the same day, 0..86400 (600)

exit codes:
  0 ok, 1 unexpected failure, 2 configuration or arguments (checked before any request),
  3 COC API failure (names ticket, batch, marker), 4 write failure (published days named),
  130 interrupted (SIGINT), 143 terminated (SIGTERM)
"""


class MartsStaleError(Exception):
    """Days were published but ``coc.duckdb`` could not be rebuilt over them."""


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {value!r}") from None


def _cmd_ingest(args: argparse.Namespace) -> int:
    from pipelines.ingest import ingest_days
    from pipelines.preflight import check_warehouse
    from pipelines.settings import (
        check_day_range,
        client_settings_from_env,
        warehouse_settings_from_env,
    )
    from warehouse.build import BuildError, check_build_target

    client = client_settings_from_env(os.environ)
    args.client = client
    wh = warehouse_settings_from_env(os.environ)
    last = args.to or args.day
    check_day_range(args.day, last, tz=wh.tz)
    check_warehouse(wh)
    try:
        check_build_target(wh.duckdb_path)
    except BuildError as exc:
        raise ConfigError(str(exc)) from None
    days = [args.day + timedelta(days=i) for i in range((last - args.day).days + 1)]
    published: list[date] = args.published

    def on_day(result: DayResult) -> None:
        published.append(result.day)
        print(
            f"{result.day}: {result.walk.tickets} tickets, {result.walk.batches} batches, "
            f"{result.rows} instances, {result.http.requests} requests "
            f"({result.http.retries} retries) in {result.seconds:.1f}s",
            flush=True,
        )

    try:
        ingest_days(
            client,
            wh,
            days,
            on_day=on_day,
            report=lambda m: print(m, flush=True),
        )
    except BaseException:
        if published:  # the days before the failing one are published: build over them
            args.rebuilt = _rebuild_quietly(
                wh.warehouse,
                wh.duckdb_path,
                published,
                redis_url=wh.redis_url,
                object_store=wh.object_store,
            )
        raise
    _rebuild(
        wh.warehouse,
        wh.duckdb_path,
        published,
        redis_url=wh.redis_url,
        object_store=wh.object_store,
    )
    return EXIT_OK


def _rebuild(
    warehouse: str,
    duckdb_path: str,
    published: Sequence[date],
    *,
    redis_url: str | None = None,
    object_store: ObjectStoreSettings | None = None,
) -> None:
    """Rebuild ``coc.duckdb`` after publishing; a failure says the marts are stale."""
    import duckdb

    from pipelines.shared_lock import build_lock
    from warehouse.build import BuildError, build_warehouse

    try:
        with build_lock(duckdb_path, redis_url=redis_url):
            built = build_warehouse(
                warehouse=warehouse,
                duckdb_path=duckdb_path,
                object_store=object_store,
                changed_days=published,
            )
    except (BuildError, duckdb.Error, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MartsStaleError(
            f"published {_days(published)}, but building {duckdb_path} failed: {first_line}; "
            "the marts are stale until `coc-etl build-warehouse` succeeds"
        ) from exc
    print(f"warehouse: {built.duckdb_path} ({_build_kind(built)})")


def _rebuild_quietly(
    warehouse: str,
    duckdb_path: str,
    published: Sequence[date],
    *,
    redis_url: str | None = None,
    object_store: ObjectStoreSettings | None = None,
) -> bool:
    """Rebuild after a failed or interrupted range; whether it worked (said, never raised)."""
    try:
        _rebuild(warehouse, duckdb_path, published, redis_url=redis_url, object_store=object_store)
    except Exception as exc:  # the run's own failure is the one to report
        print(f"coc-etl: {exc}", file=sys.stderr)
        return False
    return True


def _days(days: Sequence[date]) -> str:
    if not days:
        return "no day"
    if len(days) <= 3:
        return ", ".join(d.isoformat() for d in days)
    return f"{len(days)} days, {days[0]} to {days[-1]}"


def _outcome(args: argparse.Namespace) -> str:
    """What a run that stopped early left published, for its last message."""
    published: list[date] = getattr(args, "published", [])
    if getattr(args, "command", None) != "ingest":
        return ""
    if not published:
        return "; no day was published"
    marts = (
        "coc.duckdb rebuilt over them"
        if getattr(args, "rebuilt", False)
        else "coc.duckdb NOT rebuilt (marts stale: run `coc-etl build-warehouse`)"
    )
    return (
        f"; published before it stopped: {_days(published)} ({marts}); "
        "the day it stopped in keeps its previous contents"
    )


def _build_kind(built: BuildResult) -> str:
    if built.full:
        return f"full rebuild: {built.full_reason}"
    days = ", ".join(day.isoformat() for day in built.changed_days) or "none"
    return f"incremental: days {days}"


def _cmd_build(args: argparse.Namespace) -> int:
    from pipelines.settings import warehouse_settings_from_env
    from pipelines.shared_lock import build_lock
    from warehouse.build import build_warehouse

    wh = warehouse_settings_from_env(os.environ)
    with build_lock(wh.duckdb_path, redis_url=wh.redis_url):
        built = build_warehouse(
            warehouse=wh.warehouse,
            duckdb_path=wh.duckdb_path,
            object_store=wh.object_store,
            rebuild=args.rebuild,
        )
    print(f"{built.duckdb_path} ({_build_kind(built)}): {', '.join(built.views)}")
    for table, rows in built.rows.items():
        print(f"  {table}: {rows} rows")
    return EXIT_OK


def _cmd_repartition(args: argparse.Namespace) -> int:
    from pipelines.repartition import repartition
    from pipelines.settings import warehouse_settings_from_env, zone
    from warehouse.build import BuildError, check_build_target

    wh = warehouse_settings_from_env({**os.environ, "COC_TIMEZONE": "UTC"})
    assumed = os.environ.get("COC_TIMEZONE", "").strip() or "UTC"
    try:
        zone(args.timezone)
    except ConfigError:
        raise ConfigError(f"--timezone {args.timezone!r} is not a known IANA time zone") from None
    zone(assumed)
    try:
        check_build_target(wh.duckdb_path)
    except BuildError as exc:
        raise ConfigError(str(exc)) from None
    done = repartition(wh.warehouse, timezone=args.timezone, assumed_timezone=assumed)
    print(
        f"re-cut {done.tickets} tickets of {len(done.old_days)} days in {done.old_timezone} "
        f"into {len(done.days)} days in {done.timezone}"
    )
    _rebuild(wh.warehouse, wh.duckdb_path, done.days)
    if done.partial_days:
        print(
            f"partial (some of their hours were in no old day): {_days(done.partial_days)}; "
            f"with COC_TIMEZONE={done.timezone}, ingest them again: "
            + "; ".join(f"coc-etl ingest {d}" for d in done.partial_days)
        )
    print(f"set COC_TIMEZONE={done.timezone} for every later run")
    return EXIT_OK


def _duckdb_path(args: argparse.Namespace) -> tuple[str, ObjectStoreSettings | None]:
    """The DuckDB file to read, and how to reach the object storage its views may name."""
    from pipelines.settings import object_store_settings_from_env, warehouse_settings_from_env

    if args.duckdb:
        on_s3 = os.environ.get("COC_WAREHOUSE", "").strip().startswith("s3://")
        return args.duckdb, object_store_settings_from_env(os.environ) if on_s3 else None
    wh = warehouse_settings_from_env(os.environ)
    return wh.duckdb_path, wh.object_store


def _cmd_report(args: argparse.Namespace) -> int:
    import duckdb

    from warehouse.report import failure_report, format_alerts, format_report, newest_alerts

    path, object_store = _duckdb_path(args)
    source = "--duckdb" if args.duckdb else "COC_DUCKDB"
    if not os.path.exists(path):
        raise ConfigError(f"no DuckDB file at {path} ({source}): materialize a day first")
    if not os.path.isfile(path):
        raise ConfigError(f"{source} {path} is not a file")
    try:
        alerts = format_alerts(*newest_alerts(path))
        rows = failure_report(path, days=args.days, by=args.by, object_store=object_store)
    except duckdb.CatalogException:
        raise ConfigError(
            f"{source} {path} has no failure_rates_daily: not a coc.duckdb built by coc-etl"
        ) from None
    except duckdb.Error as exc:
        if object_store is None and "httpfs" in str(exc):
            raise ConfigError(
                f"{path} reads an s3:// warehouse: set COC_WAREHOUSE to it and the AWS_* "
                "variables (README, Object storage)"
            ) from None
        reason = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{source} {path} cannot be read as a DuckDB file: {reason}") from None
    print(alerts)
    print()
    print(format_report(rows, by=args.by))
    return EXIT_OK


#: the demo's DuckDB file (``make demo`` runs ``coc-etl demo --dir .demo``), relative to the
#: working directory: what ``coc-etl dashboard`` opens when nothing else is set
DEMO_DUCKDB = os.path.join(".demo", "warehouse", "coc.duckdb")


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from warehouse.dashboard.queries import DashboardError
    from warehouse.dashboard.serve import serve

    object_store = None
    if args.duckdb or os.environ.get("COC_DUCKDB") or os.environ.get("COC_WAREHOUSE"):
        path, object_store = _duckdb_path(args)
    else:
        path = DEMO_DUCKDB
    try:
        serve(duckdb_path=path, host=args.host, port=args.port, object_store=object_store)
    except DashboardError as exc:
        print(f"coc-etl dashboard: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= number <= 3660:
        raise argparse.ArgumentTypeError(f"must be within 1..3660, got {number}")
    return number


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

    p = sub.add_parser(
        "ingest",
        help="ingest day(s) without Dagster, then rebuild coc.duckdb",
        description="Ingest day(s) of COC script orders, publish each day whole, then "
        "rebuild coc.duckdb. Configuration comes from the environment.",
        epilog=INGEST_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("day", type=_day, help="first day, YYYY-MM-DD (in COC_TIMEZONE), >= 2024-01-01")
    p.add_argument("--to", type=_day, help="last day, inclusive, not after today (default: day)")
    p.set_defaults(handler=_cmd_ingest)

    p = sub.add_parser(
        "repartition",
        help="re-cut every day of the warehouse in another time zone",
        description="Move every ticket, with its batches and instances, to its day in ZONE; "
        "the warehouse then belongs to ZONE (set COC_TIMEZONE to it). The days at the edges "
        "are partial: the command names them, to be ingested again.",
    )
    p.add_argument("--timezone", required=True, metavar="ZONE", help="IANA zone, e.g. UTC")
    p.set_defaults(handler=_cmd_repartition)

    p = sub.add_parser(
        "warehouse",
        aliases=["build-warehouse"],
        help="update coc.duckdb: the days whose files changed, or every day with --rebuild",
    )
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="recompute every mart over every day (a repair) instead of the changed days",
    )
    p.set_defaults(handler=_cmd_build)

    p = sub.add_parser(
        "report", help="print the newest day's failure-shift alerts, then failure rates"
    )
    p.add_argument("--days", type=_positive, default=7, help="how many recent days (default 7)")
    p.add_argument(
        "--by",
        choices=("region", "zone", "application", "script"),
        default="region",
        help="the key of each line (default region)",
    )
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


class _Terminated:
    """SIGTERM (what ``kill`` and schedulers send) aborts like SIGINT, and the same clean-up
    runs (the run is cancelled, staged files are removed). Where SIGINT has Python's or
    asyncio's handler, this handler raises SIGINT. Where SIGINT is ignored (a command started
    with ``&`` from a script), it cancels the tasks of the running event loop, as asyncio's
    own SIGINT handler would, or raises ``KeyboardInterrupt`` outside a loop. ``received``
    tells ``main`` which message and exit code to give."""

    received = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        if callable(signal.getsignal(signal.SIGINT)):
            signal.raise_signal(signal.SIGINT)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise KeyboardInterrupt from None
        for task in asyncio.all_tasks(loop):
            task.cancel()


def _retry_hint(exc: CocError, args: argparse.Namespace) -> str:
    from pipelines.coc.retry import is_retriable

    if not is_retriable(exc):
        return ""
    client = getattr(args, "client", None)
    now = (
        f" (now {client.max_attempts} and {client.retry_budget_s:g})" if client is not None else ""
    )
    return f"; retries ran out: raise COC_MAX_ATTEMPTS or COC_RETRY_BUDGET_S{now}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "simulator":
        args.options = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.published = []
    terminated = _Terminated()
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, terminated)
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
        hint = _retry_hint(exc, args)
        print(f"coc-etl: COC API error: {exc}{hint}{_outcome(args)}", file=sys.stderr)
        return EXIT_API
    except (KeyboardInterrupt, asyncio.CancelledError):
        what = "terminated (SIGTERM)" if terminated.received else "interrupted"
        print(f"coc-etl: {what}{_outcome(args)}", file=sys.stderr)
        return EXIT_TERMINATED if terminated.received else EXIT_INTERRUPTED
    except MartsStaleError as exc:
        print(f"coc-etl: write error: {exc}", file=sys.stderr)
        return EXIT_WRITE
    except Exception as exc:
        from pipelines.parquet import WriteError
        from pipelines.shared_lock import LockBusyError
        from warehouse.build import BuildError

        if isinstance(exc, WriteError | BuildError | LockBusyError):
            print(f"coc-etl: write error: {exc}{_outcome(args)}", file=sys.stderr)
            return EXIT_WRITE
        raise
    finally:
        logging.getLogger(__name__).debug("done in %.1fs", time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
