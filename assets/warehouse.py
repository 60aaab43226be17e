"""The DuckDB file: views over the day-partitioned Parquet, and the marts on top; a check
that warns when the newest day has failure-shift alerts."""

from collections.abc import Iterator
from datetime import date

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    Config,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    multi_asset,
)

from assets.checks import NO_FAILURE_SHIFTS, WAREHOUSE_CHECKS
from assets.failures import reported_failures
from assets.ingestion import TABLE_DESCRIPTIONS
from assets.partitions import SINGLE_RUN
from assets.resources import WarehouseResource
from warehouse.build import MARTS_DIR, build_locked, mart_description
from warehouse.report import ShiftAlert, describe_alert, newest_alerts


class WarehouseBuildConfig(Config):
    """Run config of the warehouse step."""

    #: recompute every mart over every day (a repair), not only the days this run changed
    rebuild: bool = False


def build_warehouse_asset(
    partitions_def: PartitionsDefinition, backfill: BackfillPolicy = SINGLE_RUN
):
    specs = [
        AssetSpec(
            "warehouse",
            deps=list(TABLE_DESCRIPTIONS),
            description="coc.duckdb: views over the Parquet; marts updated for the run's days.",
            group_name="warehouse",
            kinds={"duckdb"},
        )
    ]

    @multi_asset(
        name="coc_warehouse",
        specs=specs,
        check_specs=[
            AssetCheckSpec(c.name, asset=c.asset, description=c.description)
            for c in WAREHOUSE_CHECKS
        ],
        partitions_def=partitions_def,
        backfill_policy=backfill,
        can_subset=False,
    )
    @reported_failures
    def coc_warehouse(
        context: AssetExecutionContext, config: WarehouseBuildConfig, warehouse: WarehouseResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Update coc.duckdb (views, and the marts for the run's days), count each mart's
        rows, check for shifts."""
        result = build_locked(
            warehouse.settings(),
            changed_days=[date.fromisoformat(key) for key in context.partition_keys],
            rebuild=config.rebuild,
            run_id=context.run.run_id,
        )
        kind = (
            f"full rebuild ({result.full_reason})"
            if result.full
            else "days " + (", ".join(d.isoformat() for d in result.changed_days) or "none")
        )
        context.log.info(f"built {result.duckdb_path}, {kind}: {', '.join(result.views)}")
        yield MaterializeResult(
            asset_key="warehouse",
            metadata={
                "path": MetadataValue.path(result.duckdb_path),
                **{f"rows_{t}": n for t, n in result.rows.items()},
                "empty_tables": MetadataValue.text(", ".join(result.empty_tables) or "none"),
                "build": MetadataValue.text(kind),
                # the marts are assets of their own downstream of this one (mart_specs), not
                # materialized one by one: 3 events each, 10 ms apiece, on every run
                **{f"mart_rows_{m}": n for m, n in result.mart_rows.items()},
            },
        )
        yield shift_check_result(*newest_alerts(result.duckdb_path))

    return coc_warehouse


def mart_specs() -> list[AssetSpec]:
    """The marts: views in coc.duckdb that the warehouse step updates, shown downstream of
    ``warehouse`` with their descriptions; their row counts are that step's metadata
    (``mart_rows_<mart>``)."""
    return [
        AssetSpec(
            mart.stem,
            deps=["warehouse"],
            description=mart_description(mart),
            group_name="marts",
            kinds={"duckdb"},
        )
        for mart in sorted(MARTS_DIR.glob("*.sql"))
    ]


def shift_check_result(newest: date | None, alerts: list[ShiftAlert]) -> AssetCheckResult:
    """Passed when the newest day has no alert; else a warning naming each alert."""
    lines = [describe_alert(alert) for alert in alerts]
    return AssetCheckResult(
        check_name=NO_FAILURE_SHIFTS.name,
        asset_key=NO_FAILURE_SHIFTS.asset,
        passed=not alerts,
        severity=AssetCheckSeverity.WARN,
        description=(
            "\n".join(lines)[:4000]
            if alerts
            else f"no failure shifts on {newest}"
            if newest
            else "no data yet"
        ),
        metadata={
            "newest_day": MetadataValue.text(newest.isoformat() if newest else "none"),
            "alerts": len(alerts),
            "alerts_list": MetadataValue.md(
                "\n".join(f"- {line}" for line in lines) if lines else "(none)"
            ),
        },
    )
