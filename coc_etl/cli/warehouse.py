"""``coc-etl warehouse`` (alias ``build-warehouse``) and ``coc-etl repartition``."""

from __future__ import annotations

import argparse
import dataclasses

from coc_etl.cli.ingest import (
    build_kind,
    deliver_alerts_after_build,
    rebuild,
)
from coc_etl.cli.outcome import EXIT_OK, days_text
from pipelines.errors import ConfigError
from pipelines.variables import process_env


def _check_coc_duckdb(duckdb_path: str) -> None:
    from warehouse.preflight import check_coc_duckdb  # loaded when a command runs

    check_coc_duckdb(duckdb_path)


def run_build(args: argparse.Namespace) -> int:
    from pipelines.settings import warehouse_settings_from_env
    from warehouse.build import build_locked

    wh = warehouse_settings_from_env(process_env())
    _check_coc_duckdb(wh.duckdb_path)  # a foreign or unwritable file: exit 2, untouched
    if wh.object_store is not None:  # keys, bucket, endpoint: named before the build lists
        from pipelines.lake.objectstore import check_access

        check_access(wh.warehouse, wh.object_store)
    built = build_locked(wh, rebuild=args.rebuild)
    print(f"{built.duckdb_path} ({build_kind(built)}): {', '.join(built.views)}")
    for table, rows in built.rows.items():
        print(f"  {table}: {rows} rows")
    deliver_alerts_after_build(wh)
    return EXIT_OK


def run_migrate(args: argparse.Namespace) -> int:
    from pipelines.lake.migrate import ensure_tables
    from pipelines.lake.tables import warehouse_lake
    from pipelines.settings import warehouse_settings_from_env
    from warehouse.build import build_locked

    wh = warehouse_settings_from_env(process_env())
    _check_coc_duckdb(wh.duckdb_path)
    done = ensure_tables(warehouse_lake(wh))
    if not done:
        print(f"{wh.warehouse}: every table is a Delta table already")
    for table, files in done.items():
        print(f"{wh.warehouse}: {table} is a Delta table now, over its {files} files")
    built = build_locked(wh, rebuild=True)
    print(f"{built.duckdb_path} ({build_kind(built)})")
    return EXIT_OK


def run_repartition(args: argparse.Namespace) -> int:
    from pipelines.settings import warehouse_settings_from_env, zone

    try:
        zone(args.timezone)
    except ConfigError:
        raise ConfigError(f"--timezone {args.timezone!r} is not a known IANA time zone") from None
    # COC_TIMEZONE: the zone of a warehouse that has no manifest yet (checked here, once)
    wh = warehouse_settings_from_env(process_env())
    assumed = wh.timezone
    _check_coc_duckdb(wh.duckdb_path)

    from pipelines.lake.repartition import repartition

    done = repartition(wh.warehouse, timezone=args.timezone, assumed_timezone=assumed)
    print(
        f"re-cut {done.tickets} tickets of {len(done.old_days)} days in {done.old_timezone} "
        f"into {len(done.days)} days in {done.timezone}"
    )
    rebuild(dataclasses.replace(wh, timezone=done.timezone), done.days)
    if done.partial_days:
        print(
            f"partial (some of their hours were in no old day): {days_text(done.partial_days)}; "
            f"with COC_TIMEZONE={done.timezone}, ingest them again: "
            + "; ".join(f"coc-etl ingest {d}" for d in done.partial_days)
        )
    print(f"set COC_TIMEZONE={done.timezone} for every later run")
    return EXIT_OK
