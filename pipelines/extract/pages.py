"""Instance pages, as received, straight to ``execution_instances`` record batches in Arrow.

The fetching side decodes only the ids of a batch page (it needs them for paging) and keeps
the body. A chunk of bodies (about one row group's worth) is then parsed here by Arrow's JSON
reader into nested columns and flattened with Arrow kernels: no Python object per instance
or per value, and the GIL released for almost all of it, so a thread of the fetching process
does it beside the event loop, several times faster than decoding into structs and
gathering column lists (the README's Performance section has the figure).

Arrow's reader is less strict than the documented contract in a few places (it does not
check UTF-8, it takes a ``null`` where a record belongs) and stricter in others (it refuses
a repeated key). Anything it refuses, and anything the checks here find odd, sends the whole
chunk down the reference path instead: ``msgspec`` decoding into the typed models, page by
page, and ``InstanceColumns``. That path names the ticket, batch and marker of a page that
does not match the documented schema, and its output is what this fast path must equal
(``tests/unit/test_pages.py`` holds them to it).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import NamedTuple

import msgspec
import msgspec.inspect
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from pipelines.coc.models import Instance, RawPage
from pipelines.coc.pagination import decode_instances
from pipelines.transform.drift import clean_by_arrow, documented_arrow_schema
from pipelines.transform.flatten import InstanceColumns
from pipelines.transform.schemas import (
    ATTRIBUTES,
    EXECUTION_INSTANCES,
    PROPERTY_COLUMNS,
    TARGET_COLUMNS,
    TIMESTAMP,
)

_STRING = pa.string()
#: bytes of bodies per block of a threaded reading (a chunk is some 8 MB of bodies)
THREADED_BLOCK = 2 << 20


def _arrow_type(t: msgspec.inspect.Type) -> pa.DataType:
    """The Arrow type Arrow's JSON reader should give what a record model decodes: the
    models stay the one statement of the page's schema."""
    if isinstance(t, msgspec.inspect.UnionType):  # every model field is ``X | None``
        (t,) = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
    if isinstance(t, msgspec.inspect.StrType):
        return _STRING
    if isinstance(t, msgspec.inspect.IntType):
        return pa.int64()
    if isinstance(t, msgspec.inspect.ListType):
        return pa.list_(_arrow_type(t.item_type))
    if isinstance(t, msgspec.inspect.StructType):
        return pa.struct([(f.encode_name, _arrow_type(f.type)) for f in t.fields])
    raise TypeError(f"no Arrow type for {t!r}")


_INSTANCE: pa.StructType = _arrow_type(msgspec.inspect.type_info(Instance))
_TARGET: pa.StructType = _INSTANCE.field("target_instance").type
_PROPERTIES: pa.StructType = _TARGET.field("properties").type
#: one response body per line: only what the table needs; other fields are skipped
_BODY = pa.schema([pa.field("data", pa.struct([("execute_instances", pa.list_(_INSTANCE))]))])
_PARSE = pj.ParseOptions(explicit_schema=_BODY, unexpected_field_behavior="ignore")


def _documented_parse() -> pj.ParseOptions | None:
    """The body exactly as documented (``drift.DOCUMENTED``), unexpected fields an error;
    None unless its records are the models' (then one reading serves both)."""
    schema = documented_arrow_schema("get_batch")
    if schema is None:
        return None
    records = schema.field("data").type.field("execute_instances").type
    if records != _BODY.field("data").type.field("execute_instances").type:
        return None
    return pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")


_DOCUMENTED_PARSE = _documented_parse()

#: contract column <- field of the instance (those of its target and the target's
#: properties: ``schemas.TARGET_COLUMNS``, ``schemas.PROPERTY_COLUMNS``)
_INSTANCE_COLUMNS = (
    ("instance_id", "id"),
    ("status", "status"),
    ("message", "message"),
    ("execute_costs", "execute_costs"),
)


class PendingPage(NamedTuple):
    """One kept batch page waiting to be flattened."""

    execute_uuid: str
    batch_index: int
    page: RawPage


def flatten_pages(pages: Sequence[PendingPage]) -> pa.RecordBatch:
    """The ``execution_instances`` rows of ``pages``, in order, repeated ids dropped.

    Raises ``ResponseError`` naming the ticket, batch and marker of a page whose body is not
    the documented JSON.
    """
    batch = _arrow_path(pages) if pages else None
    return batch if batch is not None else _reference_path(pages)


def flatten_documented(pages: Sequence[PendingPage]) -> tuple[pa.RecordBatch, bool]:
    """``flatten_pages``, and whether every body of ``pages`` is proven to be exactly as
    documented (no schema drift: ``drift.clean_by_arrow``) by the same one reading.

    A replay's loader uses it: the bodies so proven need no drift walk of their own. When
    Arrow cannot read the chunk with the documented schema (a drifted body), the chunk is
    flattened as ``flatten_pages`` does and nothing is proven.
    """
    if pages and _DOCUMENTED_PARSE is not None:
        text = _text(pages)
        parsed = _read(text, _DOCUMENTED_PARSE, threads=True)
        if parsed is not None and parsed.num_rows == len(pages):
            clean = clean_by_arrow(parsed, text)
            batch = _flattened(pages, parsed)
            if batch is not None:
                return batch, clean
            return _reference_path(pages), clean
    return flatten_pages(pages), False


def _text(pages: Sequence[PendingPage]) -> bytes:
    return b"\n".join(_one_line(p.page.body) for p in pages)


def _read(text: bytes, parse: pj.ParseOptions, *, threads: bool = False) -> pa.Table | None:
    """``text`` read by Arrow; None if it refuses it. With ``threads`` (a replay, whose
    event loop does not fetch), in blocks of ``THREADED_BLOCK`` on Arrow's CPU pool: the
    cores a fetch leaves to the network and the server read the pages instead."""
    if threads and len(text) > THREADED_BLOCK:
        options = pj.ReadOptions(use_threads=True, block_size=THREADED_BLOCK)
    else:
        options = pj.ReadOptions(use_threads=False, block_size=max(len(text), 1 << 20))
    try:
        return pj.read_json(io.BytesIO(text), read_options=options, parse_options=parse)
    except pa.ArrowException:
        return None


def _arrow_path(pages: Sequence[PendingPage]) -> pa.RecordBatch | None:
    """The fast path, or None when Arrow refuses the chunk or it needs a closer look."""
    parsed = _read(_text(pages), _PARSE)
    if parsed is None or parsed.num_rows != len(pages):
        return None
    return _flattened(pages, parsed)


def _flattened(pages: Sequence[PendingPage], parsed: pa.Table) -> pa.RecordBatch | None:
    """The rows of ``parsed`` (one body per page), or None where the chunk needs a closer
    look."""
    data = parsed.column("data").combine_chunks()
    if data.null_count:
        return None
    lists = data.field("execute_instances")
    if lists.null_count:  # the ids decode saw records there: not the same reading
        return None
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    instances = lists.flatten()
    if instances.null_count:
        return None
    instances, kept = _kept(pages, instances, lengths)
    if instances is None:
        return None
    try:
        batch = _columns(pages, instances, kept)
        batch.validate(full=True)  # UTF-8 of every string, which the reader did not check
    except (pa.ArrowException, _NotPlain):
        return None
    return batch


def _one_line(body: bytes) -> bytes:
    """A JSON text on one line: raw line breaks can only be whitespace between tokens."""
    if b"\n" in body:
        body = body.replace(b"\n", b" ")
    if b"\r" in body:
        body = body.replace(b"\r", b" ")
    return body


def _kept(
    pages: Sequence[PendingPage], instances: pa.StructArray, lengths: np.ndarray
) -> tuple[pa.StructArray | None, np.ndarray]:
    """Drop the records the pager dropped (repeated ids); check each page's record count.

    Returns the kept records and, per page, the number of kept records."""
    kept = np.fromiter((p.page.count for p in pages), dtype=np.int64, count=len(pages))
    if all(p.page.keep is None for p in pages):
        if not np.array_equal(kept, lengths):
            return None, kept
        return instances, kept
    positions: list[np.ndarray] = []
    offset = 0
    for n, (_, _, page) in enumerate(pages):
        length = int(lengths[n])
        if page.keep is None:
            if length != page.count:
                return None, kept
            positions.append(np.arange(offset, offset + length))
        else:
            if not page.keep or page.keep[-1] >= length:
                return None, kept
            positions.append(offset + np.asarray(page.keep, dtype=np.int64))
        offset += length
    return instances.take(pa.array(np.concatenate(positions))), kept


class _NotPlain(Exception):
    """The chunk has something the fast path leaves to the reference path."""


def _columns(
    pages: Sequence[PendingPage], instances: pa.StructArray, kept: np.ndarray
) -> pa.RecordBatch:
    rows = len(instances)
    page_of_row = pa.array(np.repeat(np.arange(len(pages), dtype=np.int64), kept))
    out: dict[str, pa.Array] = {
        "execute_uuid": pa.array([p.execute_uuid for p in pages], _STRING).take(page_of_row),
        "batch_index": pa.array([p.batch_index for p in pages], pa.int32()).take(page_of_row),
    }
    fields = dict(zip(_INSTANCE.names, instances.flatten(), strict=True))
    if fields["id"].null_count:
        raise _NotPlain
    for column, name in _INSTANCE_COLUMNS:
        out[column] = fields[name]
    created = fields["gmt_created"]
    finished = fields["gmt_finished"]
    out["created_at"] = created.cast(TIMESTAMP)
    out["finished_at"] = finished.cast(TIMESTAMP)
    out["duration_ms"] = pc.subtract(finished, created)
    target = dict(zip(_TARGET.names, fields["target_instance"].flatten(), strict=True))
    for column, name in TARGET_COLUMNS:
        out[column] = target[name]
    props = dict(zip(_PROPERTIES.names, target["properties"].flatten(), strict=True))
    for column, name in PROPERTY_COLUMNS:
        out[column] = props[name]
    # region and project: from the properties, else from the target itself
    out["region_id"] = pc.coalesce(props["region_id"], target["region_id"])
    out["project_id"] = pc.coalesce(props["project_id"], target["project_id"])
    out["custom_attributes"] = _attributes(target["custom_attributes"])
    columns = [out[name] for name in EXECUTION_INSTANCES.names]
    if any(len(c) != rows for c in columns):
        raise _NotPlain
    return pa.RecordBatch.from_arrays(columns, schema=EXECUTION_INSTANCES)


def _attributes(lists: pa.ListArray) -> pa.MapArray:
    """``custom_attributes`` as a map; a key-less or null entry is the reference path's."""
    entries = lists.values
    if entries.null_count:
        raise _NotPlain
    keys, values = entries.flatten()
    if keys.null_count:
        raise _NotPlain
    return pa.MapArray.from_arrays(
        lists.offsets,
        keys,
        values,
        type=ATTRIBUTES,
        mask=lists.is_null() if lists.null_count else None,
    )


def _reference_path(pages: Sequence[PendingPage]) -> pa.RecordBatch:
    columns = InstanceColumns()
    for execute_uuid, batch_index, page in pages:
        instances = decode_instances(page, ticket=execute_uuid, batch=batch_index)
        columns.append(execute_uuid, batch_index, instances)
    return columns.take()
