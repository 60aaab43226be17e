"""The DuckDB warehouse: views over the Parquet tables, the marts, the failure report and
the failure-shift alerts."""

from warehouse.build import BuildResult, build_warehouse, connect
from warehouse.report import (
    ReportRow,
    ShiftAlert,
    describe_alert,
    failure_report,
    format_alerts,
    format_report,
    newest_alerts,
)

__all__ = [
    "BuildResult",
    "ReportRow",
    "ShiftAlert",
    "build_warehouse",
    "connect",
    "describe_alert",
    "failure_report",
    "format_alerts",
    "format_report",
    "newest_alerts",
]
