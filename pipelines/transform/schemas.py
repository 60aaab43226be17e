"""The Arrow schemas of the tables, and the types they share: their one home.

The writer (``pipelines/lake/day_writer.py``) checks every batch against ``TABLES``; the two
flattening paths (``pipelines/transform/flatten.py``, ``pipelines/extract/pages.py``) build batches
of these schemas; the warehouse build (``warehouse/build.py``) declares its views from them. The
column lists are the contract's (``execution_instances``, ``script_orders``, ``order_batches``); the
mappings below say which API field fills which contract column.

Two more tables are published with each day, in the same commit as the three, but are no part
of the contract's views: ``raw_responses`` (every response body the day's run received, as
received: ``pipelines/lake/raw_archive.py``) and ``schema_drift`` (what those bodies hold that the
documented schema does not say: ``pipelines/transform/drift.py``). ``DAY_TABLES`` is all five.
"""

from __future__ import annotations

import pyarrow as pa

TIMESTAMP = pa.timestamp("ms", tz="UTC")
ATTRIBUTES = pa.map_(pa.string(), pa.string())

EXECUTION_INSTANCES = pa.schema(
    [
        pa.field("execute_uuid", pa.string(), nullable=False),
        pa.field("batch_index", pa.int32(), nullable=False),
        pa.field("instance_id", pa.int64(), nullable=False),
        pa.field("status", pa.string()),
        pa.field("message", pa.string()),
        pa.field("created_at", TIMESTAMP),
        pa.field("finished_at", TIMESTAMP),
        pa.field("execute_costs", pa.int64()),
        pa.field("duration_ms", pa.int64()),
        pa.field("resource_id", pa.string()),
        pa.field("provider", pa.string()),
        pa.field("resource_type", pa.string()),
        pa.field("agent_sn", pa.string()),
        pa.field("agent_status", pa.string()),
        pa.field("host_name", pa.string()),
        pa.field("fixed_ip", pa.string()),
        pa.field("floating_ip", pa.string()),
        pa.field("zone_id", pa.string()),
        pa.field("application", pa.string()),
        pa.field("group_name", pa.string()),
        pa.field("region_id", pa.string()),
        pa.field("project_id", pa.string()),
        pa.field("custom_attributes", ATTRIBUTES),
    ]
)

SCRIPT_ORDERS = pa.schema(
    [
        pa.field("execute_uuid", pa.string(), nullable=False),
        pa.field("order_id", pa.int64()),
        pa.field("order_name", pa.string()),
        pa.field("creator", pa.string()),
        pa.field("status", pa.string()),
        pa.field("created_at", TIMESTAMP),
        pa.field("finished_at", TIMESTAMP),
        pa.field("execute_costs", pa.int64()),
        pa.field("duration_ms", pa.int64()),
        pa.field("region_ids", pa.string()),
        pa.field("script_uuid", pa.string()),
        pa.field("script_name", pa.string()),
        pa.field("script_version_name", pa.string()),
        pa.field("execute_user", pa.string()),
        pa.field("timeout_s", pa.int64()),
        pa.field("success_rate", pa.float64()),
        pa.field("batch_count", pa.int32()),
        pa.field("total_instances", pa.int64()),
    ]
)

ORDER_BATCHES = pa.schema(
    [
        pa.field("execute_uuid", pa.string(), nullable=False),
        pa.field("batch_index", pa.int32(), nullable=False),
        pa.field("total_instances", pa.int64()),
        pa.field("rotation_strategy", pa.string()),
        pa.field("instances_ingested", pa.int64()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "execution_instances": EXECUTION_INSTANCES,
    "script_orders": SCRIPT_ORDERS,
    "order_batches": ORDER_BATCHES,
}


#: contract column <- field of ``target_instance`` / of its ``properties`` (both flattening
#: paths read these: ``flatten.InstanceColumns`` and the Arrow path in ``pages.py``)
TARGET_COLUMNS = (
    ("resource_id", "resource_id"),
    ("provider", "provider"),
    ("resource_type", "type"),
    ("agent_sn", "agent_sn"),
    ("agent_status", "agent_status"),
)
PROPERTY_COLUMNS = (
    ("host_name", "host_name"),
    ("fixed_ip", "fixed_ip"),
    ("floating_ip", "floating_ip"),
    ("zone_id", "zone_id"),
    ("application", "application"),
    ("group_name", "group"),
)


#: every response body a run used, exactly as received, with the request that produced it
#: (never a header: the signature and the token travel there)
RAW_RESPONSES = pa.schema(
    [
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("received_at", TIMESTAMP, nullable=False),
        pa.field("endpoint", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("query", pa.string(), nullable=False),
        pa.field("marker", pa.int64()),
        pa.field("execute_uuid", pa.string()),
        pa.field("batch_index", pa.int32()),
        pa.field("status_code", pa.int32(), nullable=False),
        pa.field("body", pa.binary(), nullable=False),
    ]
)

#: one row per (endpoint, field path, kind) that a day's responses did not send as documented
SCHEMA_DRIFT = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("endpoint", pa.string(), nullable=False),
        pa.field("field_path", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("expected", pa.string()),
        pa.field("example_value", pa.string()),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("first_seen", TIMESTAMP, nullable=False),
    ]
)

RAW_TABLES: dict[str, pa.Schema] = {"raw_responses": RAW_RESPONSES}
DRIFT_TABLES: dict[str, pa.Schema] = {"schema_drift": SCHEMA_DRIFT}
#: what one run of a day publishes together, in this order: the archive first, so that a run
#: stopped between two tables leaves an archive at least as new as the tables (a replay brings
#: them level), never tables the archive cannot reproduce
DAY_TABLES: dict[str, pa.Schema] = {**RAW_TABLES, **TABLES, **DRIFT_TABLES}
