"""The three tables of a day, produced together by one walk of the COC API."""

from collections.abc import Iterator
from datetime import date
from typing import Any

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

from assets.checks import CHECKS, day_checks, read_day
from assets.failures import reported_failures
from assets.partitions import SINGLE_RUN
from assets.resources import CocApiResource, WarehouseResource
from pipelines.coc.metrics import RequestMetrics
from pipelines.ingest import DayResult, ingest_days
from pipelines.replay import check_archived, replay_days
from warehouse.preflight import check_before_run


class CocDayConfig(Config):
    """Run configuration of ``coc_day``: ``replay: true`` derives the days again from their
    raw archive (``coc-etl replay``), with no request to the COC API."""

    replay: bool = False


TABLE_DESCRIPTIONS = {
    "script_orders": "One row per ticket (script order) created that day.",
    "order_batches": "One row per (ticket, batch): total_instances and instances ingested.",
    "execution_instances": "One row per (ticket, batch, instance): status, message, host.",
}


def build_ingestion_asset(
    partitions_def: PartitionsDefinition, backfill: BackfillPolicy = SINGLE_RUN
):
    @multi_asset(
        name="coc_day",
        specs=[
            AssetSpec(name, description=text, group_name="coc", kinds={"parquet"})
            for name, text in TABLE_DESCRIPTIONS.items()
        ],
        check_specs=[
            AssetCheckSpec(c.name, asset=c.asset, description=c.description) for c in CHECKS
        ],
        partitions_def=partitions_def,
        backfill_policy=backfill,
        can_subset=False,
    )
    @reported_failures
    def coc_day(
        context: AssetExecutionContext,
        config: CocDayConfig,
        coc: CocApiResource,
        warehouse: WarehouseResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Walk every ticket of the day(s), every batch, every page; publish each day whole,
        with its raw archive. With ``replay``, derive the day(s) from that archive instead."""
        wh = warehouse.settings()
        check_before_run(wh)  # before any request, as coc-etl does: warehouse/preflight.py
        days = [date.fromisoformat(k) for k in context.partition_keys]

        def on_day(result: DayResult) -> None:
            context.log.info(
                f"{result.day}: published {result.rows} instances of {result.walk.tickets} "
                f"tickets, {result.walk.batches} batches in {result.seconds:.1f}s "
                f"({result.http.requests} requests, {result.http.retries} retries)"
            )

        if config.replay:
            check_archived(wh, days)  # a day without an archive fails, naming it, first
            context.log.info(f"replaying {len(days)} day(s) {days[0]}..{days[-1]} from the archive")
            results = replay_days(
                wh, days, report=context.log.info, on_day=on_day, run_id=context.run.run_id
            )
            endpoint = "archive"
        else:
            client_settings = coc.client_settings()
            context.log.info(
                f"ingesting {len(days)} day(s) {days[0]}..{days[-1]} from "
                f"{client_settings.endpoint} (max_rps={client_settings.max_rps}, "
                f"concurrency={client_settings.concurrency})"
            )
            results = ingest_days(
                client_settings,
                wh,
                days,
                report=context.log.info,
                on_day=on_day,
                run_id=context.run.run_id,
            )
            endpoint = client_settings.endpoint
        for name in TABLE_DESCRIPTIONS:
            yield MaterializeResult(asset_key=name, metadata=_metadata(name, results, wh, endpoint))
        yield from _check_results(results, wh)

    return coc_day


def _metadata(table: str, results: list[DayResult], wh: Any, endpoint: str) -> dict[str, Any]:
    rows = sum(r.tables[table].rows for r in results)
    http = sum((r.http for r in results), RequestMetrics())
    meta: dict[str, Any] = {
        "dagster/row_count": rows,
        "days": MetadataValue.text(", ".join(r.day.isoformat() for r in results)),
        "bytes_written": sum(r.tables[table].bytes for r in results),
        "files_written": sum(r.tables[table].files for r in results),
        "tickets": sum(r.walk.tickets for r in results),
        "batches": sum(r.walk.batches for r in results),
        "instances": sum(r.walk.instances for r in results),
        "http_requests": http.requests,
        "http_retries": http.retries,
        "http_429": http.throttled,
        "seconds": round(sum(r.seconds for r in results), 3),
        "endpoint": MetadataValue.url(endpoint) if "://" in endpoint else endpoint,
        "replayed": any(r.replayed for r in results),
        "location": MetadataValue.path(f"{wh.warehouse.rstrip('/')}/{table}/"),
    }
    if results:
        last = results[-1].day.isoformat()
        preview = read_day(wh.warehouse, table, last, None, limit=5, object_store=wh.object_store)
        meta["preview"] = MetadataValue.md(_markdown(preview.to_pylist()))
    return meta


def _markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])[:12]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = [str(row[c])[:40].replace("|", "/").replace("\n", " ") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _check_results(results: list[DayResult], wh: Any) -> Iterator[AssetCheckResult]:
    by_check: dict[tuple[str, str], list] = {}
    for result in results:
        for outcome in day_checks(result, wh.warehouse, wh.object_store):
            by_check.setdefault((outcome.name, outcome.asset), []).append(outcome)
    for (name, asset), outcomes in by_check.items():
        failed = [o for o in outcomes if not o.passed]
        warned = [o for o in outcomes if o.warn_only]
        errors = [o for o in failed if not o.warn_only]
        yield AssetCheckResult(
            check_name=name,
            asset_key=asset,
            passed=not failed,
            severity=AssetCheckSeverity.ERROR if errors else AssetCheckSeverity.WARN,
            description="\n".join(o.description for o in (failed or warned or outcomes))[:4000],
            metadata={
                "days_checked": len(outcomes),
                "days_failed": len(failed),
                "days_warned": len(warned),
            },
        )
