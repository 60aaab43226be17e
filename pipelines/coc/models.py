"""Typed records of the COC script-order API, decoded and validated in one pass by msgspec.

Field names and types follow the published page and the official SDK's models. Every field
may be null (the published example has nulls almost everywhere), unknown fields are ignored,
and a value of the wrong type fails decoding with the JSON path of the field.
Fields we never read are typed ``Any`` so that an undocumented shape there cannot fail a run.
"""

from __future__ import annotations

from typing import Any

import msgspec

ORDER_STATUSES = frozenset({"PROCESSING", "ABNORMAL", "PAUSED", "CANCELED", "FINISHED"})
INSTANCE_STATUSES = frozenset(
    {"READY", "PROCESSING", "ABNORMAL", "CANCELED", "FINISHED", "ROLLBACKED"}
)
#: The ``status`` filter the batch endpoint accepts (ROLLBACKED is not among them).
BATCH_STATUS_FILTERS = frozenset({"READY", "PROCESSING", "ABNORMAL", "CANCELED", "FINISHED"})


class _Record(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    pass


class OrderListProperties(_Record):
    region_ids: str | None = None


class _Ticket(_Record):
    """The fields the list entry and the detail of a ticket share."""

    execute_uuid: str | None = None
    gmt_created: int | None = None
    gmt_finished: int | None = None
    execute_costs: int | None = None
    creator: str | None = None
    status: str | None = None


class Order(_Ticket):
    """One ticket as the list endpoint returns it."""

    order_id: int | None = None
    order_name: str | None = None
    properties: OrderListProperties | None = None


class OrderPage(_Record):
    total: int | None = None
    data: list[Order] | None = None


class ExecuteParam(_Record):
    resourceful: bool | None = None
    timeout: int | None = None
    success_rate: float | None = None
    execute_user: str | None = None
    script_params: Any = None


class OrderDetailProperties(_Record):
    script_uuid: str | None = None
    script_name: str | None = None
    script_version_uuid: int | str | None = None
    script_version_name: str | None = None
    current_execute_batch_index: Any = None  # never read: drift there is reported, not fatal
    execute_param: ExecuteParam | None = None


class OrderDetail(_Ticket):
    """One ticket's detail."""

    properties: OrderDetailProperties | None = None


class BatchSummary(_Record):
    """One entry of a ticket's batch list."""

    batch_index: int
    total_instances: int | None = None
    rotation_strategy: str | None = None
    properties: Any = None


class CustomAttribute(_Record):
    key: str | None = None
    value: str | None = None


class HostProperties(_Record):
    host_name: str | None = None
    fixed_ip: str | None = None
    floating_ip: str | None = None
    region_id: str | None = None
    zone_id: str | None = None
    application: str | None = None
    group: str | None = None
    project_id: str | None = None


class TargetInstance(_Record):
    resource_id: str | None = None
    provider: str | None = None
    region_id: str | None = None
    project_id: str | None = None
    type: str | None = None
    custom_attributes: list[CustomAttribute] | None = None
    agent_sn: str | None = None
    agent_status: str | None = None
    properties: HostProperties | None = None


class Instance(_Record):
    """``ExectionInstanceModel``: one host's run in one batch."""

    id: int
    target_instance: TargetInstance | None = None
    gmt_created: int | None = None
    gmt_finished: int | None = None
    execute_costs: int | None = None
    status: str | None = None
    message: str | None = None


class BatchPage(_Record):
    """One page of a batch's instances."""

    batch_index: int | None = None
    total_instances: int | None = None
    execute_instances: list[Instance] | None = None


class InstanceId(_Record):
    id: int


class BatchPageIds(_Record):
    """A batch page read for paging only: the ids and the total, every other field skipped.

    Used when the full decode happens elsewhere (see ``pipelines/extract/pages.py``).
    """

    batch_index: int | None = None
    total_instances: int | None = None
    execute_instances: list[InstanceId] | None = None


class RawPage(msgspec.Struct, frozen=True, kw_only=True):
    """A batch page as received, for a consumer that decodes it elsewhere."""

    body: bytes
    marker: int
    #: positions of the records to keep (repeated ids dropped); None keeps them all
    keep: list[int] | None
    count: int


class StatusCount(_Record):
    instance_status: str | None = None
    instance_count: int | None = None
    batch_indexes: list[int] | None = None


class Statistics(_Record):
    total_instance: int | None = None
    execute_statistics: list[StatusCount] | None = None


class _Envelope(msgspec.Struct, kw_only=True):
    data: Any


def envelope_type(payload: type) -> type:
    """The ``{"data": payload}`` wrapper every response uses, as a decodable type."""
    return _ENVELOPES[payload]


_ENVELOPES: dict[Any, type] = {
    payload: msgspec.defstruct(
        f"{getattr(payload, '__name__', 'List')}Envelope",
        [("data", payload)],
        kw_only=True,
    )
    for payload in (
        OrderPage,
        OrderDetail,
        list[BatchSummary],
        BatchPage,
        BatchPageIds,
        Statistics,
    )
}

#: What a body that failed to decode can raise.
DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError)


def describe_bad_body(body: bytes, exc: BaseException) -> str:
    """Our own words for why a 2xx body is not the documented JSON.

    The kind (not UTF-8, not JSON, off the schema) is decided here; the decoder's own detail
    follows after a colon, for the reader, and is never what a caller matches on.
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        kind = "the body is not valid UTF-8"
    else:
        if isinstance(exc, msgspec.ValidationError):
            kind = "a value does not match the documented schema"
        else:
            kind = "the body is not JSON"
    return f"the response is not the documented JSON ({kind}): {exc}"
