"""The commands that read ``coc.duckdb``: ``coc-etl report`` and ``coc-etl dashboard``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from pipelines.cli.outcome import EXIT_CONFIG, EXIT_OK
from pipelines.coc.errors import ConfigError

if TYPE_CHECKING:
    from pipelines.settings import ObjectStoreSettings

#: the demo's DuckDB file (``make demo`` runs ``coc-etl demo --dir .demo``), relative to the
#: working directory: what ``coc-etl dashboard`` opens when nothing else is set
DEMO_DUCKDB = os.path.join(".demo", "warehouse", "coc.duckdb")


def recent_days(value: str) -> int:
    """``report --days``: a whole number of days within 1..3660."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= number <= 3660:
        raise argparse.ArgumentTypeError(f"must be within 1..3660, got {number}")
    return number


def duckdb_path(args: argparse.Namespace) -> tuple[str, ObjectStoreSettings | None]:
    """The DuckDB file to read, and how to reach the object storage its views may name."""
    from pipelines.settings import object_store_settings_from_env, warehouse_settings_from_env

    if args.duckdb:
        on_s3 = os.environ.get("COC_WAREHOUSE", "").strip().startswith("s3://")
        return args.duckdb, object_store_settings_from_env(os.environ) if on_s3 else None
    wh = warehouse_settings_from_env(os.environ)
    return wh.duckdb_path, wh.object_store


def run_report(args: argparse.Namespace) -> int:
    path, object_store = duckdb_path(args)
    source = "--duckdb" if args.duckdb else "COC_DUCKDB"
    if not os.path.exists(path):
        raise ConfigError(f"no DuckDB file at {path} ({source}): materialize a day first")
    if not os.path.isfile(path):
        raise ConfigError(f"{source} {path} is not a file")

    import duckdb

    from warehouse.build import connect
    from warehouse.report import failure_report, format_alerts, format_report, newest_alerts
    from warehouse.schema_drift import format_drift, recent_drift

    try:
        alerts = format_alerts(*newest_alerts(path))
        rows = failure_report(path, days=args.days, by=args.by, object_store=object_store)
        con = connect(path, read_only=True, object_store=object_store)
        try:
            drift = format_drift(recent_drift(con, args.days), args.days)
        finally:
            con.close()
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
    print()
    print(drift)
    return EXIT_OK


def run_dashboard(args: argparse.Namespace) -> int:
    from warehouse.dashboard.queries import DashboardError
    from warehouse.dashboard.serve import serve

    object_store = None
    if args.duckdb or os.environ.get("COC_DUCKDB") or os.environ.get("COC_WAREHOUSE"):
        path, object_store = duckdb_path(args)
    else:
        path = DEMO_DUCKDB
    try:
        serve(duckdb_path=path, host=args.host, port=args.port, object_store=object_store)
    except DashboardError as exc:
        print(f"coc-etl dashboard: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK
