"""Alert delivery from Dagster: a run-status sensor that, after each successful run, sends the
episodes of ``alert_episodes`` that are due (``warehouse/alerts``), not a step of the run.

A delivery problem never fails anything: the sensor's tick reports how many notices went out
and which channels failed (by name, never their URL or password), and the next run's tick
delivers what is left.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

from dagster import (
    ConfigurableResource,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    SkipReason,
    run_status_sensor,
)

from assets.resources import WarehouseResource, described, fields_from_env
from pipelines.errors import ConfigError
from pipelines.variables import ALERT_VARIABLES, BY_NAME, accept_all
from warehouse.alerts.deliver import AlertSettings, DeliveryReport, alert_settings, deliver_quietly

SENSOR_NAME = "deliver_alerts"


class AlertsResource(ConfigurableResource):
    """Where alerts go: fields as declared (``pipelines/variables.py``), filled by
    ``from_env`` (``pipelines/definitions.py``)."""

    channels: str | None = described("COC_ALERT_CHANNELS")
    dashboard_url: str | None = described("COC_DASHBOARD_URL")
    digest: bool | None = described("COC_ALERT_DIGEST")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        return cls(**fields_from_env(ALERT_VARIABLES, env))

    def settings(self) -> AlertSettings:
        given = {BY_NAME[n].field: getattr(self, BY_NAME[n].field) for n in ALERT_VARIABLES}
        return alert_settings(accept_all(ALERT_VARIABLES, given))


def deliver_for_run(
    warehouse: WarehouseResource, alerts: AlertsResource, run_id: str | None
) -> DeliveryReport:
    """The sensor's work, callable without a sensor context."""
    try:
        settings = alerts.settings()
    except ConfigError as exc:
        return DeliveryReport(failed=[f"not delivered: {exc}"])
    wh = warehouse.settings()
    return deliver_quietly(
        duckdb_path=wh.duckdb_path,
        warehouse=wh.warehouse,
        settings=settings,
        redis_url=wh.redis_url,
        run_id=run_id,
    )


@run_status_sensor(
    name=SENSOR_NAME,
    run_status=DagsterRunStatus.SUCCESS,
    default_status=DefaultSensorStatus.RUNNING,
    description="After each successful run, sends new and closed alert episodes to the "
    "channels of COC_ALERT_CHANNELS, each once.",
)
def deliver_alerts_sensor(
    context: RunStatusSensorContext, warehouse: WarehouseResource, alerts: AlertsResource
) -> SkipReason:
    report = deliver_for_run(warehouse, alerts, context.dagster_run.run_id)
    summary = report.summary()
    if report.failed:
        context.log.warning(f"alerts: {summary}")
    else:
        context.log.info(f"alerts: {summary}")
    return SkipReason(summary)
