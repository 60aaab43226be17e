"""The DuckDB file: views over the day-partitioned Parquet, and the marts on top."""

from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    multi_asset,
)

from assets.ingestion import TABLE_DESCRIPTIONS
from assets.partitions import BACKFILL
from assets.resources import WarehouseResource
from warehouse.build import MARTS_DIR, build_warehouse, connect, mart_description, scalar


def build_warehouse_asset(partitions_def: PartitionsDefinition):
    marts = sorted(MARTS_DIR.glob("*.sql"))
    specs = [
        AssetSpec(
            "warehouse",
            deps=list(TABLE_DESCRIPTIONS),
            description="coc.duckdb: views over the Parquet tables (rebuilt whole).",
            group_name="warehouse",
            kinds={"duckdb"},
        ),
        *(
            AssetSpec(
                mart.stem,
                deps=["warehouse"],
                description=mart_description(mart),
                group_name="marts",
                kinds={"duckdb"},
            )
            for mart in marts
        ),
    ]

    @multi_asset(
        name="coc_warehouse",
        specs=specs,
        partitions_def=partitions_def,
        backfill_policy=BACKFILL,
        can_subset=False,
    )
    def coc_warehouse(
        context: AssetExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[MaterializeResult]:
        """Rebuild coc.duckdb (views and marts) and profile each mart."""
        wh = warehouse.settings()
        result = build_warehouse(warehouse=wh.warehouse, duckdb_path=wh.duckdb_path)
        context.log.info(f"built {result.duckdb_path}: {', '.join(result.views)}")
        yield MaterializeResult(
            asset_key="warehouse",
            metadata={
                "path": MetadataValue.path(result.duckdb_path),
                **{f"rows_{t}": n for t, n in result.rows.items()},
                "empty_tables": MetadataValue.text(", ".join(result.empty_tables) or "none"),
            },
        )
        con = connect(result.duckdb_path)
        try:
            for mart in result.marts:
                rows = scalar(con, f'SELECT count(*) FROM "{mart}"')
                yield MaterializeResult(
                    asset_key=mart,
                    metadata={"dagster/row_count": rows, "duckdb": result.duckdb_path},
                )
        finally:
            con.close()

    return coc_warehouse
