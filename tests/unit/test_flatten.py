"""Flattening API records into the contract's Arrow tables: columns, types, nulls."""

from __future__ import annotations

import msgspec
import pyarrow as pa

from pipelines.coc.models import BatchPage, BatchSummary, Order, OrderDetail, envelope_type
from pipelines.transform.flatten import InstanceColumns, batches_batch, orders_batch
from pipelines.transform.schemas import EXECUTION_INSTANCES, ORDER_BATCHES, SCRIPT_ORDERS
from tests.support.sample_page import PAGE


def _page() -> BatchPage:
    return msgspec.json.Decoder(envelope_type(BatchPage)).decode(PAGE).data


def test_instances_follow_the_contract_columns_and_types() -> None:
    cols = InstanceColumns()
    cols.append("uuid-1", 3, _page().execute_instances)
    batch = cols.take()
    assert batch.schema == EXECUTION_INSTANCES
    assert batch.schema.field("created_at").type == pa.timestamp("ms", tz="UTC")
    assert batch.schema.field("batch_index").type == pa.int32()
    assert batch.schema.field("custom_attributes").type == pa.map_(pa.string(), pa.string())
    rows = batch.to_pylist()
    assert [r["instance_id"] for r in rows] == [1588, 1590, 1591, 1592]
    assert {r["execute_uuid"] for r in rows} == {"uuid-1"}
    assert {r["batch_index"] for r in rows} == {3}
    assert cols.rows == 0  # buffers start empty again


def test_published_example_maps_field_by_field() -> None:
    cols = InstanceColumns()
    cols.append("u", 1, _page().execute_instances)
    first = cols.take().to_pylist()[0]
    assert first["status"] == "CANCELED"
    assert first["message"] == "Script execution result"
    assert int(first["created_at"].timestamp() * 1000) == 1697946452436
    assert int(first["finished_at"].timestamp() * 1000) == 1697946763467
    assert first["execute_costs"] == 311031
    assert first["duration_ms"] == 311031  # finished - created
    assert first["resource_id"] == "resource_id"
    assert first["agent_sn"] == "agent_sn"
    assert first["agent_status"] is None
    assert first["host_name"] == "host_name"
    assert first["fixed_ip"] == "x.x.x.x"
    assert first["floating_ip"] is None
    assert first["region_id"] == "cn-north-7"  # from properties
    assert first["zone_id"] == "cn-north-7c"
    assert first["application"] is None
    assert first["group_name"] is None
    assert first["project_id"] is None
    assert first["custom_attributes"] is None  # absent stays null, not an empty map


def test_region_and_project_fall_back_to_the_target_instance() -> None:
    cols = InstanceColumns()
    cols.append("u", 1, _page().execute_instances)
    second = cols.take().to_pylist()[1]
    assert second["region_id"] == "cn-east-3"  # properties.region_id is null
    assert second["project_id"] == "p-inner"  # properties wins when set
    assert second["group_name"] == "g1"
    assert second["provider"] == "ECS"
    assert second["resource_type"] == "CLOUD_HOST"
    assert second["host_name"] == "主机-01"
    assert second["message"] == "line 1\nline 2"
    assert second["finished_at"] is None
    assert second["duration_ms"] is None  # null when either end is null
    assert second["custom_attributes"] == [("env", "prod"), ("owner", None)]


def test_nulls_stay_nulls_and_empty_strings_stay_empty() -> None:
    cols = InstanceColumns()
    cols.append("u", 1, _page().execute_instances)
    rows = cols.take().to_pylist()
    third, fourth = rows[2], rows[3]
    for name in EXECUTION_INSTANCES.names:
        if name not in ("execute_uuid", "batch_index", "instance_id", "finished_at"):
            assert third[name] is None, name
    assert fourth["custom_attributes"] == []
    assert fourth["message"] == ""  # as sent: an empty string is not a null
    assert fourth["host_name"] is None
    values = [v for r in rows for v in r.values() if isinstance(v, str)]
    assert "None" not in values and "null" not in values


def test_many_pages_accumulate_then_flush() -> None:
    page = _page().execute_instances
    cols = InstanceColumns()
    for batch_index in range(1, 6):
        cols.append("u", batch_index, page)
    cols.append("u", 9, [])
    assert cols.rows == 20
    batch = cols.take()
    assert batch.num_rows == 20
    assert batch.column("batch_index").to_pylist() == [i for i in range(1, 6) for _ in range(4)]
    assert batch.column("custom_attributes").null_count == 10


def test_orders_prefer_the_detail_and_fall_back_to_the_list() -> None:
    order = msgspec.convert(
        {
            "order_id": 42,
            "order_name": "patch",
            "execute_uuid": "u1",
            "gmt_created": 1000,
            "gmt_finished": 4000,
            "execute_costs": 3,
            "creator": "alice",
            "status": "PROCESSING",
            "properties": {"region_ids": "cn-north-4,cn-east-3"},
        },
        Order,
    )
    detail = msgspec.convert(
        {
            "execute_uuid": "u1",
            "status": "FINISHED",
            "gmt_finished": 5000,
            "properties": {
                "script_uuid": "s-1",
                "script_name": "restart",
                "script_version_name": "v2",
                "execute_param": {"timeout": 300, "success_rate": 99.5, "execute_user": "root"},
            },
        },
        OrderDetail,
    )
    batch = orders_batch([(order, detail, 3, 120), (order, None, 0, None)])
    assert batch.schema == SCRIPT_ORDERS
    first, second = batch.to_pylist()
    assert first["status"] == "FINISHED" and second["status"] == "PROCESSING"
    assert first["creator"] == "alice"
    assert first["duration_ms"] == 4000 and second["duration_ms"] == 3000
    assert first["region_ids"] == "cn-north-4,cn-east-3"
    assert first["script_name"] == "restart" and second["script_name"] is None
    assert first["timeout_s"] == 300 and first["success_rate"] == 99.5
    assert first["execute_user"] == "root"
    assert first["batch_count"] == 3 and first["total_instances"] == 120
    assert second["total_instances"] is None


def test_batches_rows() -> None:
    b = BatchSummary(batch_index=2, total_instances=51, rotation_strategy="PAUSE")
    batch = batches_batch([("u1", b, 51)])
    assert batch.schema == ORDER_BATCHES
    assert batch.to_pylist() == [
        {
            "execute_uuid": "u1",
            "batch_index": 2,
            "total_instances": 51,
            "rotation_strategy": "PAUSE",
            "instances_ingested": 51,
        }
    ]
