"""Alert delivery from Dagster: a run-status sensor that, after each successful run, sends the
episodes of ``alert_episodes`` that are due (``pipelines/alerts``), not a step of the run.

A delivery problem never fails anything: the sensor's tick reports how many notices went out
and which channels failed (by name, never their URL or password), and the next run's tick
delivers what is left.
"""

from __future__ import annotations

from dagster import (
    ConfigurableResource,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    SkipReason,
    run_status_sensor,
)
from pydantic import Field

from assets.resources import WarehouseResource
from pipelines.alerts.deliver import (
    AlertSettings,
    DeliveryReport,
    alert_settings_from_env,
    deliver_quietly,
)
from pipelines.coc.errors import ConfigError

SENSOR_NAME = "deliver_alerts"


class AlertsResource(ConfigurableResource):
    """Where alerts go. Filled by ``EnvVar`` (``pipelines/definitions.py``)."""

    channels: str | None = Field(
        default=None, description="COC_ALERT_CHANNELS: JSON list or @file (secret: URLs)"
    )
    dashboard_url: str | None = Field(default=None, description="COC_DASHBOARD_URL")
    digest: str | None = Field(default=None, description="COC_ALERT_DIGEST: 1 for a daily digest")

    def settings(self) -> AlertSettings:
        values = {
            "COC_ALERT_CHANNELS": self.channels or "",
            "COC_DASHBOARD_URL": self.dashboard_url or "",
            "COC_ALERT_DIGEST": self.digest or "",
        }
        return alert_settings_from_env(values)


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
