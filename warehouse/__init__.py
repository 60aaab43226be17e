"""The DuckDB warehouse: views over the Parquet tables, the marts, and the failure report."""

from warehouse.build import BuildResult, build_warehouse, connect
from warehouse.report import ReportRow, failure_report, format_report

__all__ = [
    "BuildResult",
    "ReportRow",
    "build_warehouse",
    "connect",
    "failure_report",
    "format_report",
]
