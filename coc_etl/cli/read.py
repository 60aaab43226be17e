"""The commands that read ``coc.duckdb``: ``coc-etl report`` and ``coc-etl dashboard``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from coc_etl.cli.outcome import EXIT_CONFIG, EXIT_OK
from pipelines.errors import ConfigError
from pipelines.variables import BY_NAME, process_env

if TYPE_CHECKING:
    from pipelines.settings import ObjectStoreSettings

#: the demo's DuckDB file (``make demo`` runs ``coc-etl demo --dir .demo``), relative to the
#: working directory: what ``coc-etl report`` and ``coc-etl dashboard`` open when nothing
#: else is set
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


def timestamp(value: str) -> datetime:
    """``report --as-of``: an ISO 8601 moment; without a zone, UTC."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 timestamp such as 2026-11-25T06:00:00Z: {value!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def duckdb_path(args: argparse.Namespace) -> tuple[str, ObjectStoreSettings | None]:
    """The DuckDB file to read, and how to reach the object storage its views may name:
    ``--duckdb``, else ``COC_DUCKDB`` or the one under ``COC_WAREHOUSE``, else the demo's."""
    from pipelines.settings import object_store_settings_from_env, warehouse_settings_from_env

    env = process_env()
    if not (args.duckdb or _warehouse_named(env)):
        return DEMO_DUCKDB, None
    if args.duckdb:
        on_s3 = str(BY_NAME["COC_WAREHOUSE"].read(env) or "").startswith("s3://")
        return args.duckdb, object_store_settings_from_env(env) if on_s3 else None
    wh = warehouse_settings_from_env(env)
    return wh.duckdb_path, wh.object_store


def _warehouse_named(env: Mapping[str, str]) -> bool:
    return BY_NAME["COC_DUCKDB"].is_set(env) or BY_NAME["COC_WAREHOUSE"].is_set(env)


def _source(args: argparse.Namespace) -> str:
    """Where ``duckdb_path`` found the file, for messages."""
    if args.duckdb:
        return "--duckdb"
    if _warehouse_named(process_env()):
        return "COC_DUCKDB"
    return "the demo's warehouse, as no COC_DUCKDB or COC_WAREHOUSE is set; run `make demo`"


def run_report(args: argparse.Namespace) -> int:
    if getattr(args, "as_of", None) is not None:
        with tempfile.TemporaryDirectory(prefix="coc-as-of-") as folder:
            return _report(args, *_built_as_of(args.as_of, folder))
    return _report(args, *duckdb_path(args))


def _built_as_of(as_of: datetime, folder: str) -> tuple[str, ObjectStoreSettings | None]:
    """A ``coc.duckdb`` over the tables as they were at ``as_of``, in ``folder``."""
    from pipelines.settings import warehouse_settings_from_env
    from warehouse.build import build_warehouse

    wh = warehouse_settings_from_env(process_env())
    if as_of > datetime.now(UTC):
        raise ConfigError(f"--as-of {as_of.isoformat()} is in the future")
    try:
        built = build_warehouse(
            warehouse=wh.warehouse,
            duckdb_path=os.path.join(folder, "coc.duckdb"),
            object_store=wh.object_store,
            as_of=as_of,
        )
    except Exception as exc:
        import duckdb

        if isinstance(exc, duckdb.IOException):
            raise ConfigError(
                f"--as-of {as_of.isoformat()}: some files of that time were vacuumed "
                f"(COC_VACUUM_RETENTION_HOURS={wh.vacuum_retention_h:g} keeps them that long)"
            ) from None
        raise
    return built.duckdb_path, wh.object_store


def _report(args: argparse.Namespace, path: str, object_store: ObjectStoreSettings | None) -> int:
    source = "--as-of" if getattr(args, "as_of", None) else _source(args)
    if not os.path.exists(path):
        raise ConfigError(f"no DuckDB file at {path} ({source}): materialize a day first")
    if not os.path.isfile(path):
        raise ConfigError(f"{source} {path} is not a file")

    import duckdb

    from pipelines.errors import StorageError
    from warehouse.build import connect
    from warehouse.publish import not_ours
    from warehouse.report import failure_report, format_alerts, format_report, newest_alerts
    from warehouse.schema_drift import format_drift, recent_drift

    foreign = not_ours(Path(path))
    if foreign is not None:
        raise ConfigError(f"{source} {path} is not a coc.duckdb built by coc-etl: {foreign}")
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
        # the file is the warehouse's own: what failed is reading the data its views name
        raise StorageError(
            f"reading the warehouse's data through {path} failed: {read_failure(exc)}; "
            "nothing was changed (if files were removed by hand, `coc-etl warehouse` "
            "rebuilds the views over what is there)"
        ) from None
    print(alerts)
    print()
    print(format_report(rows, by=args.by))
    print()
    print(drift)
    return EXIT_OK


def read_failure(exc: BaseException) -> str:
    """One line saying why DuckDB could not read: the error's first line, or, when it carries
    a Python traceback (a file system registered on the connection raised), that traceback's
    last line: the exception that stopped the read."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        return lines[-1]
    return lines[0]


def run_dashboard(args: argparse.Namespace) -> int:
    from warehouse.dashboard.queries import DashboardError
    from warehouse.dashboard.serve import serve

    path, object_store = duckdb_path(args)
    try:
        serve(duckdb_path=path, host=args.host, port=args.port, object_store=object_store)
    except DashboardError as exc:
        print(f"coc-etl dashboard: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK
