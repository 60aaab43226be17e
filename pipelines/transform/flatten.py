"""The code that fills the three tables (schemas: ``pipelines/transform/schemas.py``) from API
records.

Each contract column is mapped explicitly. Rows are gathered column by column into plain
lists (the cheapest thing Python can do per value) and turned into one Arrow record batch per
flush, so building a batch costs a handful of C calls per column rather than per value.
Derived values (``duration_ms``) are computed in Arrow, where nulls propagate by themselves.

For ``execution_instances`` this is the reference path: instance pages normally go from
their bodies straight to Arrow (``pipelines/extract/pages.py``, the faster path), which falls
back to ``InstanceColumns`` for anything it does not take as it is and is tested equal to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.coc.models import (
    BatchSummary,
    HostProperties,
    Instance,
    Order,
    OrderDetail,
    TargetInstance,
)
from pipelines.transform.schemas import (
    ATTRIBUTES,
    EXECUTION_INSTANCES,
    ORDER_BATCHES,
    PROPERTY_COLUMNS,
    SCRIPT_ORDERS,
    TARGET_COLUMNS,
)


def _duration(created: pa.Array, finished: pa.Array) -> pa.Array:
    return pc.subtract(finished.cast(pa.int64()), created.cast(pa.int64()))


class InstanceColumns:
    """Column buffers for ``execution_instances``; append pages, then take a record batch."""

    __slots__ = ("_attr_keys", "_attr_offsets", "_attr_valid", "_attr_values", "_cols", "rows")

    _NAMES: tuple[str, ...] = tuple(
        n for n in EXECUTION_INSTANCES.names if n not in ("duration_ms", "custom_attributes")
    )

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cols: dict[str, list] = {n: [] for n in self._NAMES}
        # custom_attributes as a map built from flat lists: no per-row Python containers,
        # which the cyclic garbage collector would otherwise track and rescan
        self._attr_offsets: list[int] = [0]
        self._attr_valid: list[bool] = []
        self._attr_keys: list[str] = []
        self._attr_values: list[str | None] = []
        self.rows = 0

    def _append_attribute_lists(self, lists: list[list | None]) -> None:
        """Many rows' ``custom_attributes`` at once: flat keys and values, and offsets."""
        keys = [a.key for attrs in lists if attrs for a in attrs]
        if None in keys:  # a key-less attribute cannot be a map entry: the row-by-row path
            for attrs in lists:
                self._append_attributes(attrs)
            return
        self._attr_keys.extend(keys)
        self._attr_values.extend([a.value for attrs in lists if attrs for a in attrs])
        self._attr_valid.extend([attrs is not None for attrs in lists])
        offsets = self._attr_offsets
        end = offsets[-1]
        for size in [len(attrs) if attrs else 0 for attrs in lists]:
            end += size
            offsets.append(end)

    def _append_attributes(self, attributes: list | None) -> None:
        if attributes is None:
            self._attr_valid.append(False)
        else:
            self._attr_valid.append(True)
            for a in attributes:
                if a.key is not None:
                    self._attr_keys.append(a.key)
                    self._attr_values.append(a.value)
        self._attr_offsets.append(len(self._attr_keys))

    def append(self, execute_uuid: str, batch_index: int, instances: Sequence[Instance]) -> None:
        """Add one page of instances of one batch."""
        n = len(instances)
        if not n:
            return
        c = self._cols
        c["execute_uuid"].extend([execute_uuid] * n)
        c["batch_index"].extend([batch_index] * n)
        c["instance_id"].extend([i.id for i in instances])
        c["status"].extend([i.status for i in instances])
        c["message"].extend([i.message for i in instances])
        c["created_at"].extend([i.gmt_created for i in instances])
        c["finished_at"].extend([i.gmt_finished for i in instances])
        c["execute_costs"].extend([i.execute_costs for i in instances])
        # a missing target or properties reads as an empty one: its columns come out null
        targets = [i.target_instance or _NO_TARGET for i in instances]
        for name, get in _TARGET_GETTERS:
            c[name].extend(map(get, targets))
        self._append_attribute_lists([t.custom_attributes for t in targets])
        props = [t.properties or _NO_PROPERTIES for t in targets]
        for name, get in _PROPERTY_GETTERS:
            c[name].extend(map(get, props))
        # region and project: from the properties, else from the target itself
        c["region_id"].extend(
            [
                p.region_id if p.region_id is not None else t.region_id
                for t, p in zip(targets, props, strict=True)
            ]
        )
        c["project_id"].extend(
            [
                p.project_id if p.project_id is not None else t.project_id
                for t, p in zip(targets, props, strict=True)
            ]
        )
        self.rows += n

    def take(self) -> pa.RecordBatch:
        """The buffered rows as one record batch; the buffers start empty again."""
        c = self._cols
        arrays = {n: pa.array(c[n], type=EXECUTION_INSTANCES.field(n).type) for n in self._NAMES}
        arrays["duration_ms"] = _duration(arrays["created_at"], arrays["finished_at"])
        arrays["custom_attributes"] = pa.MapArray.from_arrays(
            pa.array(self._attr_offsets, type=pa.int32()),
            pa.array(self._attr_keys, type=pa.string()),
            pa.array(self._attr_values, type=pa.string()),
            type=ATTRIBUTES,
            mask=pc.invert(pa.array(self._attr_valid, type=pa.bool_())),
        )
        batch = pa.RecordBatch.from_arrays(
            [arrays[n] for n in EXECUTION_INSTANCES.names], schema=EXECUTION_INSTANCES
        )
        self._reset()
        return batch


_TARGET_GETTERS = tuple((name, attrgetter(attr)) for name, attr in TARGET_COLUMNS)
_PROPERTY_GETTERS = tuple((name, attrgetter(attr)) for name, attr in PROPERTY_COLUMNS)
_NO_TARGET = TargetInstance()
_NO_PROPERTIES = HostProperties()


def orders_batch(
    rows: Iterable[tuple[Order, OrderDetail | None, int, int | None]],
) -> pa.RecordBatch:
    """``script_orders`` rows from (list entry, detail, batch_count, total_instances).

    The detail is the fresher read of the ticket; the list entry fills what the detail lacks.
    """
    cols: dict[str, list] = {n: [] for n in SCRIPT_ORDERS.names}
    for order, detail, batch_count, total in rows:
        d = detail or OrderDetail()
        props = d.properties
        param = props.execute_param if props is not None else None
        cols["execute_uuid"].append(order.execute_uuid)
        cols["order_id"].append(order.order_id)
        cols["order_name"].append(order.order_name)
        cols["creator"].append(_first(d.creator, order.creator))
        cols["status"].append(_first(d.status, order.status))
        cols["created_at"].append(_first(d.gmt_created, order.gmt_created))
        cols["finished_at"].append(_first(d.gmt_finished, order.gmt_finished))
        cols["execute_costs"].append(_first(d.execute_costs, order.execute_costs))
        cols["duration_ms"].append(None)
        cols["region_ids"].append(order.properties.region_ids if order.properties else None)
        cols["script_uuid"].append(props.script_uuid if props else None)
        cols["script_name"].append(props.script_name if props else None)
        cols["script_version_name"].append(props.script_version_name if props else None)
        cols["execute_user"].append(param.execute_user if param else None)
        cols["timeout_s"].append(param.timeout if param else None)
        cols["success_rate"].append(param.success_rate if param else None)
        cols["batch_count"].append(batch_count)
        cols["total_instances"].append(total)
    arrays = {f.name: pa.array(cols[f.name], type=f.type) for f in SCRIPT_ORDERS}
    arrays["duration_ms"] = _duration(arrays["created_at"], arrays["finished_at"])
    return pa.RecordBatch.from_arrays(
        [arrays[n] for n in SCRIPT_ORDERS.names], schema=SCRIPT_ORDERS
    )


def batches_batch(rows: Iterable[tuple[str, BatchSummary, int]]) -> pa.RecordBatch:
    """``order_batches`` rows from (execute_uuid, batch list entry, instances ingested)."""
    cols: dict[str, list] = {n: [] for n in ORDER_BATCHES.names}
    for execute_uuid, batch, ingested in rows:
        cols["execute_uuid"].append(execute_uuid)
        cols["batch_index"].append(batch.batch_index)
        cols["total_instances"].append(batch.total_instances)
        cols["rotation_strategy"].append(batch.rotation_strategy)
        cols["instances_ingested"].append(ingested)
    return pa.RecordBatch.from_arrays(
        [pa.array(cols[f.name], type=f.type) for f in ORDER_BATCHES], schema=ORDER_BATCHES
    )


def _first(*values):
    for v in values:
        if v is not None:
            return v
    return None
