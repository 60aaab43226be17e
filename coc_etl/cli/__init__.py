"""``coc-etl``: the command line. Parses arguments, calls the library, maps errors to exit codes.

Exit codes (``pipelines/errors.py``, whose error classes carry them): 0 success, 1 unexpected
failure, 2 bad configuration or arguments (found before any request), 3 the COC API failed
permanently (the message names ticket, batch and marker), 4 writing the warehouse or building
``coc.duckdb`` failed, 130 interrupted (SIGINT), 141 stdout closed early (``| head``, silent),
143 terminated (SIGTERM). A failure is one line on stderr. A day is published whole or not at
all; when a range stops early, the message names the days that were published, and
``coc.duckdb`` is rebuilt for them.

One module per command (``ingest.py``, ``warehouse.py``, ``read.py``); each imports what it
needs when it runs, so ``--help`` and a refused setting load neither Dagster, Arrow, DuckDB
nor the HTTP client (``--help`` not even asyncio).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import date
from types import FrameType

from coc_etl.cli import ingest, read, replay, warehouse
from coc_etl.cli.outcome import EXIT_INTERRUPTED, EXIT_TERMINATED, MartsStaleError, days_text
from pipelines.coc.errors import CocError
from pipelines.errors import EXIT_API, EXIT_PIPE_CLOSED, as_product_error, one_line
from pipelines.fast_exit import skip_teardown_at_exit
from pipelines.variables import DASHBOARD, MIGRATE, REPARTITION, REPORT, WAREHOUSE, help_section


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {value!r}") from None


def _port(value: str) -> int:
    """``dashboard --port``: a TCP port to listen on, 1..65535 (0 would pick one at random)."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port within 1..65535, got {port}")
    return port


def _cmd_demo(args: argparse.Namespace) -> int:
    from coc_etl.demo import run_demo

    return run_demo(base=args.dir, days=args.days, seed=args.seed)


def _cmd_simulator(args: argparse.Namespace) -> int:
    from coc_simulator.cli import main as simulator_main

    return simulator_main(args.options, prog="coc-etl simulator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coc-etl",
        description="Huawei Cloud COC script orders into Parquet and DuckDB.",
        epilog=help_section(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        epilog=ingest.HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("day", type=_day, help="first day, YYYY-MM-DD (in COC_TIMEZONE), >= 2024-01-01")
    p.add_argument("--to", type=_day, help="last day, inclusive, not after today (default: day)")
    p.add_argument(
        "--allow-shrink",
        action="store_true",
        help="publish a day even if it loses more than COC_MAX_SHRINK of its instances",
    )
    p.set_defaults(handler=ingest.run)

    p = sub.add_parser(
        "replay",
        help="derive day(s) again from their raw archive, with no request to the API",
        description="Re-derive the tables of day(s) from the raw archive their ingestion kept "
        "(after a fix or a schema change), publish each day whole, then rebuild coc.duckdb. "
        "No request is sent to the COC API.",
        epilog=replay.HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("day", type=_day, help="first day, YYYY-MM-DD (in COC_TIMEZONE)")
    p.add_argument("--to", type=_day, help="last day, inclusive (default: day)")
    p.set_defaults(handler=replay.run)

    p = sub.add_parser(
        "repartition",
        help="re-cut every day of the warehouse in another time zone",
        description="Move every ticket, with its batches and instances, to its day in ZONE; "
        "the warehouse then belongs to ZONE (set COC_TIMEZONE to it). The days at the edges "
        "are partial: the command names them, to be ingested again.",
        epilog=help_section(REPARTITION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--timezone", required=True, metavar="ZONE", help="IANA zone, e.g. UTC")
    p.set_defaults(handler=warehouse.run_repartition)

    p = sub.add_parser(
        "warehouse",
        aliases=["build-warehouse"],
        help="update coc.duckdb: the days whose files changed, or every day with --rebuild",
        epilog=help_section(WAREHOUSE),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="recompute every mart over every day (a repair) instead of the changed days",
    )
    p.set_defaults(handler=warehouse.run_build)

    p = sub.add_parser(
        "migrate",
        help="make a warehouse of plain Hive folders Delta Lake tables, in place",
        description="Turn each table of COC_WAREHOUSE (local Hive folders, or an s3:// "
        "warehouse with day manifests) into a Delta Lake table over its files, in place, "
        "then rebuild coc.duckdb. Asks the COC API nothing; every run also does it first.",
        epilog=help_section(MIGRATE),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=warehouse.run_migrate)

    p = sub.add_parser(
        "report",
        help="print the newest day's failure-shift alerts, then failure rates",
        epilog=help_section(REPORT),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--days", type=read.recent_days, default=7, help="how many recent days (default 7)"
    )
    p.add_argument(
        "--by",
        choices=("region", "zone", "application", "script"),
        default="region",
        help="the key of each line (default region)",
    )
    p.add_argument(
        "--duckdb",
        help="the DuckDB file (default: COC_DUCKDB, the warehouse's, "
        f"else the demo's {read.DEMO_DUCKDB})",
    )
    p.add_argument(
        "--as-of",
        type=read.timestamp,
        metavar="TIMESTAMP",
        help="answer from the warehouse as it was then, e.g. 2026-11-25T06:00:00Z (back as "
        "far as COC_VACUUM_RETENTION_HOURS keeps superseded files)",
    )
    p.set_defaults(handler=read.run_report)

    p = sub.add_parser(
        "dashboard",
        help="serve the read-only dashboard over coc.duckdb",
        epilog=help_section(DASHBOARD),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=_port, default=8501, help="1..65535, default 8501")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    p.add_argument(
        "--duckdb",
        help="the DuckDB file (default: COC_DUCKDB, the warehouse's, "
        f"else the demo's {read.DEMO_DUCKDB})",
    )
    p.set_defaults(handler=read.run_dashboard)

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
    #: seconds the clean-up may take before the process exits regardless: a thread blocked
    #: in a call to a store that does not answer cannot be cancelled, and nothing is lost by
    #: leaving (uncommitted files are never read, the day's lock goes with the process)
    grace_s = 5.0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if not self.received:
            threading.Thread(target=self._exit_after_grace, daemon=True).start()
        self.received = True
        if callable(signal.getsignal(signal.SIGINT)):
            signal.raise_signal(signal.SIGINT)
            return
        asyncio = sys.modules.get("asyncio")  # not loaded: no event loop can be running
        try:
            if asyncio is None:
                raise RuntimeError("no running event loop")
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise KeyboardInterrupt from None
        for task in asyncio.all_tasks(loop):
            task.cancel()
        # the loop may be asleep in its selector until its next timer (a retry's back-off):
        # a callback scheduled thread-safely wakes it, so the cancellations run now
        loop.call_soon_threadsafe(lambda: None)

    def _exit_after_grace(self) -> None:
        time.sleep(self.grace_s)
        print(
            f"coc-etl: terminated (SIGTERM); the clean-up did not finish within {self.grace_s:g}s "
            "(a store that does not answer?): nothing half-written is published",
            file=sys.stderr,
            flush=True,
        )
        os._exit(EXIT_TERMINATED)


def _cancelled(exc: BaseException) -> bool:
    """An interrupt: ``KeyboardInterrupt``, ``asyncio.CancelledError`` once asyncio runs, or
    a DuckDB query that the signal stopped (DuckDB turns the interrupt into its own error)."""
    asyncio = sys.modules.get("asyncio")
    if isinstance(exc, KeyboardInterrupt) or (
        asyncio is not None and isinstance(exc, asyncio.CancelledError)
    ):
        return True
    interrupted = type(exc).__name__ == "InterruptException" or (
        type(exc) is RuntimeError and str(exc).strip() == "Query interrupted"
    )
    return interrupted or (exc.__cause__ is not None and _cancelled(exc.__cause__))


def _outcome(args: argparse.Namespace) -> str:
    """What a run that stopped early left published, for its last message."""
    command = getattr(args, "command", None)
    if command in ("warehouse", "build-warehouse"):
        return "; coc.duckdb is as the last finished build left it"
    published: list[date] = getattr(args, "published", [])
    if command not in ("ingest", "replay"):
        return ""
    if not published:
        return "; no day was published"
    marts = (
        "coc.duckdb rebuilt over them"
        if getattr(args, "rebuilt", False)
        else "coc.duckdb NOT rebuilt (marts stale: run `coc-etl build-warehouse`)"
    )
    return (
        f"; published before it stopped: {days_text(published)} ({marts}); "
        "the day it stopped in keeps its previous contents"
    )


def _retry_hint(exc: BaseException, args: argparse.Namespace) -> str:
    from pipelines.coc.retry import is_retriable

    if not is_retriable(exc):
        return ""
    client = getattr(args, "client", None)
    now = (
        f" (now {client.max_attempts} and {client.retry_budget_s:g})" if client is not None else ""
    )
    return f"; retries ran out: raise COC_MAX_ATTEMPTS or COC_RETRY_BUDGET_S{now}"


def _interrupted(args: argparse.Namespace, terminated: _Terminated) -> int:
    what = "terminated (SIGTERM)" if terminated.received else "interrupted"
    print(f"coc-etl: {what}{_outcome(args)}", file=sys.stderr)
    return EXIT_TERMINATED if terminated.received else EXIT_INTERRUPTED


def _pipe_closed() -> int:
    """The reader of stdout went away (``coc-etl report | head``): stop quietly, as Unix
    tools do, with the exit code of a process killed by SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the exit's flush of stdout has nowhere to fail
    os.close(devnull)
    return EXIT_PIPE_CLOSED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "simulator":
        args.options = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.published = []
    skip_teardown_at_exit()
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
    except BrokenPipeError:
        return _pipe_closed()
    except Exception as exc:
        if _cancelled(exc) or terminated.received:
            return _interrupted(args, terminated)
        error = as_product_error(exc)
        if error is None:
            raise
        api = isinstance(error, CocError) and error.exit_code == EXIT_API
        hint = _retry_hint(error, args) if api else ""  # (a ConfigError is a CocError too)
        # a stale build's message names the published days itself
        outcome = "" if isinstance(error, MartsStaleError) else _outcome(args)
        print(f"coc-etl: {error.label}: {one_line(error)}{hint}{outcome}", file=sys.stderr)
        return error.exit_code
    except BaseException as exc:  # KeyboardInterrupt, asyncio.CancelledError; not SystemExit
        if not _cancelled(exc):
            raise
        return _interrupted(args, terminated)
    finally:
        logging.getLogger(__name__).debug("done in %.1fs", time.monotonic() - started)


__all__ = ["build_parser", "main"]
