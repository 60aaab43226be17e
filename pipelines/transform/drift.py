"""Schema drift: what the API sent that the documented schema does not say.

``DOCUMENTED`` is the published API (``/v1/job/script/orders`` and its sub-resources, the
reference the models in ``pipelines/coc/models.py`` follow), field by field with the JSON
type each field is documented with. ``DriftTally.inspect`` walks one response body against
it and counts, per endpoint and field path:

* ``unexpected``: a field the documentation does not have, at any level (host properties
  included; below it nothing more is reported, the archive keeps it whole);
* ``missing``: a field a contract column maps, absent from a record (a ``null`` is a value);
* ``type_changed``: a value of another JSON type than documented (a number sent as a
  string). A run still fails when such a value reaches a mapped column and cannot be read
  as its type: the decoder says so, naming the ticket, batch and marker.

Paths read ``data.execute_instances[].target_instance.properties.rack``. The example value
of a field whose name says it is a secret is never kept. Walking is cheap: a record whose
keys and value types were already seen clean is not walked again field by field, and a body
that a strict decoder of the documented schema takes whole has no drift, and is not walked.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
import pyarrow as pa

from pipelines.transform.schemas import SCHEMA_DRIFT

UNEXPECTED, MISSING, TYPE_CHANGED = "unexpected", "missing", "type_changed"
EXAMPLE_CHARS = 200
_SECRET_NAME = re.compile(r"(pass(word)?|secret|token|credential|signature|^sk$)", re.I)
_NO_EXAMPLE = "<not kept: the name says it may be a secret>"

#: JSON types, as the documentation names them
STRING, INTEGER, NUMBER, BOOLEAN, ANY = "string", "integer", "number", "boolean", "any"


@dataclass(frozen=True)
class Node:
    """One level of the documented schema: an object (``fields``), an array (``item``) or a
    scalar (``kind``); ``mapped`` names the object's fields a contract column reads."""

    kind: str
    fields: dict[str, Node] = field(default_factory=dict)
    item: Node | None = None
    mapped: frozenset[str] = frozenset()


def obj(mapped: str = "", **fields: Node | str) -> Node:
    nodes = {k: v if isinstance(v, Node) else Node(v) for k, v in fields.items()}
    return Node("object", fields=nodes, mapped=frozenset(mapped.split()))


def arr(item: Node | str) -> Node:
    return Node("array", item=item if isinstance(item, Node) else Node(item))


_TICKET = {
    "execute_uuid": STRING,
    "gmt_created": INTEGER,
    "gmt_finished": INTEGER,
    "execute_costs": INTEGER,
    "creator": STRING,
    "status": STRING,
}
_ORDER = obj(
    "execute_uuid order_id gmt_created gmt_finished execute_costs creator status",
    order_id=INTEGER,
    order_name=STRING,
    properties=obj("region_ids", region_ids=STRING),
    **_TICKET,
)
_DETAIL = obj(
    "execute_uuid gmt_created creator status properties",
    properties=obj(
        "script_name script_version_name execute_param",
        script_uuid=STRING,
        script_name=STRING,
        script_version_uuid=ANY,  # a string in the page, an integer in the SDK's example
        script_version_name=STRING,
        current_execute_batch_index=INTEGER,
        execute_param=obj(
            "timeout success_rate execute_user",
            resourceful=BOOLEAN,
            timeout=INTEGER,
            success_rate=NUMBER,
            execute_user=STRING,
            script_params=ANY,
        ),
    ),
    **_TICKET,
)
_BATCH = obj(
    "batch_index total_instances rotation_strategy",
    batch_index=INTEGER,
    total_instances=INTEGER,
    rotation_strategy=STRING,
    properties=ANY,
)
_HOST = obj(
    "host_name fixed_ip floating_ip region_id zone_id application group project_id",
    host_name=STRING,
    fixed_ip=STRING,
    floating_ip=STRING,
    region_id=STRING,
    zone_id=STRING,
    application=STRING,
    group=STRING,
    project_id=STRING,
)
_INSTANCE = obj(
    "id target_instance gmt_created gmt_finished execute_costs status message",
    id=INTEGER,
    target_instance=obj(
        "resource_id provider region_id project_id type custom_attributes agent_sn "
        "agent_status properties",
        resource_id=STRING,
        provider=STRING,
        region_id=STRING,
        project_id=STRING,
        type=STRING,
        custom_attributes=arr(obj("key value", key=STRING, value=STRING)),
        agent_sn=STRING,
        agent_status=STRING,
        properties=_HOST,
    ),
    gmt_created=INTEGER,
    gmt_finished=INTEGER,
    execute_costs=INTEGER,
    status=STRING,
    message=STRING,
)
_STATISTICS = obj(
    "",
    total_instance=INTEGER,
    execute_statistics=arr(
        obj("", instance_status=STRING, instance_count=INTEGER, batch_indexes=arr(INTEGER))
    ),
)

#: endpoint (the client's name for it) -> the documented response body
DOCUMENTED: dict[str, Node] = {
    "list_orders": obj("data", data=obj("data", total=INTEGER, data=arr(_ORDER))),
    "get_order": obj("data", data=_DETAIL),
    "list_batches": obj("data", data=arr(_BATCH)),
    "get_batch": obj(
        "data",
        data=obj(
            "execute_instances",
            batch_index=INTEGER,
            total_instances=INTEGER,
            execute_instances=arr(_INSTANCE),
        ),
    ),
    "statistics": obj("data", data=_STATISTICS),
}


_SCALARS: dict[str, Any] = {STRING: str, INTEGER: int, NUMBER: float, BOOLEAN: bool, ANY: Any}
_names = iter(range(1 << 30))


def _strict_type(node: Node) -> Any:
    """A msgspec type that decodes exactly the bodies the walker finds nothing in: unknown
    fields refused, mapped fields required (``null`` allowed), every type as documented."""
    if node.kind == "object":
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for name, child in node.fields.items():
            kind = _strict_type(child)
            kind = kind if kind is Any else kind | None
            fields.append((name, kind) if name in node.mapped else (name, kind, None))
        fields.sort(key=len)  # required fields first
        return msgspec.defstruct(
            f"Documented{next(_names)}",
            fields,
            kw_only=True,
            forbid_unknown_fields=True,
            gc=False,
        )
    if node.kind == "array":
        assert node.item is not None
        item = _strict_type(node.item)
        return list[item if item is Any else item | None]  # type: ignore[misc]
    return _SCALARS[node.kind]


#: a body these decode has no drift: the walker is for the few that do not
_CLEAN: dict[str, msgspec.json.Decoder[Any]] = {
    endpoint: msgspec.json.Decoder(_strict_type(node)) for endpoint, node in DOCUMENTED.items()
}


#: JSON type -> the Arrow type Arrow's JSON reader gives it with an explicit schema (it
#: refuses any other JSON type there: a number sent as a string fails the read)
_ARROW_SCALARS: dict[str, pa.DataType] = {STRING: pa.string(), INTEGER: pa.int64()}


def _arrow_type(node: Node) -> pa.DataType | None:
    """The Arrow type that reads exactly what ``node`` documents; None where Arrow's reader
    is not as strict as the walker (an ``any`` field, a number, a boolean)."""
    if node.kind == "object":
        fields = []
        for name, child in node.fields.items():
            kind = _arrow_type(child)
            if kind is None:
                return None
            fields.append(pa.field(name, kind))
        return pa.struct(fields)
    if node.kind == "array":
        assert node.item is not None
        item = _arrow_type(node.item)
        return None if item is None else pa.list_(item)
    return _ARROW_SCALARS.get(node.kind)


def documented_arrow_schema(endpoint: str) -> pa.Schema | None:
    """One body per row, as documented, for Arrow's JSON reader with unexpected fields an
    error (``clean_by_arrow``); None when Arrow cannot check the endpoint's schema."""
    body = _arrow_type(DOCUMENTED[endpoint])
    return None if body is None else pa.schema(list(body))


def clean_by_arrow(parsed: pa.Table, text: bytes) -> bool:
    """Whether every body of ``text`` (one per line) has no drift, from their Arrow reading.

    ``parsed`` is ``text`` read with ``documented_arrow_schema`` and unexpected fields an
    error, so no body has an undocumented field or a value of another JSON type. What is
    left is a field a contract column maps, missing: Arrow reads it as a null, like an
    explicit ``null``. So the nulls of every field inside a present object are counted and
    held against the explicit nulls of the text, ``":null`` and ``": null`` (inside a JSON
    string a quote is escaped, so each is a key's null). Equal: nothing is missing. Anything
    else (a missing field, a null written another way) says False: the walker decides.
    """
    nulls = 0
    for column in parsed.columns:
        data = column.combine_chunks()
        nulls += data.null_count + _key_nulls(data)
    return nulls == text.count(b'":null') + text.count(b'": null')


def _key_nulls(values: pa.Array) -> int:
    """The nulls of the fields of the present records of ``values`` (nested too)."""
    if isinstance(values, pa.StructArray):
        base = values.null_count  # the records themselves (and their parents) absent
        total = 0
        for child in values.flatten():  # each child carries its parents' nulls
            total += child.null_count - base + _key_nulls(child)
        return total
    if isinstance(values, pa.ListArray):
        return _key_nulls(values.flatten())  # a null item is no key's null
    return 0


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _fits(kind: str, value: Any) -> bool:
    if kind == ANY:
        return True
    found = json_type(value)
    return found == kind or (kind == NUMBER and found == INTEGER)


@dataclass
class Finding:
    expected: str | None
    example: str | None
    count: int
    first_seen_ms: int


class DriftTally:
    """Counts of drift over the responses of one day; ``batch`` gives its table rows."""

    def __init__(self, day: dt.date) -> None:
        self.day = day
        self.findings: dict[tuple[str, str, str], Finding] = {}
        self._clean: set[tuple[int, tuple[str, ...], tuple[type, ...]]] = set()

    def inspect(self, endpoint: str, body: bytes, received_at_ms: int) -> None:
        """Walk one 2xx body (already known to decode) against its documented schema."""
        spec = DOCUMENTED.get(endpoint)
        if spec is None:
            return
        try:
            _CLEAN[endpoint].decode(body)
            return  # as documented: the usual body costs one decode at C speed
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return  # the decoder refused it already, or will, naming where
        self._walk(endpoint, doc, spec, "", received_at_ms)

    def _walk(self, endpoint: str, value: Any, spec: Node, path: str, at: int) -> None:
        if value is None or spec.kind == ANY:
            return
        if spec.kind == "object":
            if not isinstance(value, dict):
                self._note(endpoint, path, TYPE_CHANGED, "object", value, at)
                return
            shape = (id(spec), tuple(value), tuple(map(type, value.values())))
            if shape in self._clean:  # seen clean: only the nested records need a look
                for key, sub in value.items():
                    if isinstance(sub, dict | list):
                        self._walk(endpoint, sub, spec.fields[key], _join(path, key), at)
                return
            clean = True
            for key, sub in value.items():
                child = spec.fields.get(key)
                where = _join(path, key)
                if child is None:
                    self._note(endpoint, where, UNEXPECTED, None, sub, at, key)
                    clean = False
                elif sub is not None and child.kind in ("object", "array"):
                    self._walk(endpoint, sub, child, where, at)
                elif sub is not None and not _fits(child.kind, sub):
                    self._note(endpoint, where, TYPE_CHANGED, child.kind, sub, at, key)
                    clean = False
            for key in spec.mapped:
                if key not in value:
                    self._note(endpoint, _join(path, key), MISSING, spec.fields[key].kind, None, at)
                    clean = False
            if clean:
                self._clean.add(shape)
        elif spec.kind == "array":
            if not isinstance(value, list):
                self._note(endpoint, path, TYPE_CHANGED, "array", value, at)
                return
            assert spec.item is not None
            item, where = spec.item, f"{path}[]"
            if item.kind in ("object", "array"):
                for sub in value:
                    self._walk(endpoint, sub, item, where, at)
            else:
                for sub in value:
                    if sub is not None and not _fits(item.kind, sub):
                        self._note(endpoint, where, TYPE_CHANGED, item.kind, sub, at)
        elif not _fits(spec.kind, value):
            self._note(endpoint, path, TYPE_CHANGED, spec.kind, value, at)

    def _note(
        self,
        endpoint: str,
        path: str,
        kind: str,
        expected: str | None,
        value: Any,
        at: int,
        name: str = "",
    ) -> None:
        key = (endpoint, path, kind)
        found = self.findings.get(key)
        if found is None:
            self.findings[key] = Finding(expected, _example(name, value, kind), 1, at)
            return
        found.count += 1
        found.first_seen_ms = min(found.first_seen_ms, at)

    def merge(self, other: DriftTally) -> None:
        for key, f in other.findings.items():
            mine = self.findings.get(key)
            if mine is None:
                self.findings[key] = f
            else:
                mine.count += f.count
                mine.first_seen_ms = min(mine.first_seen_ms, f.first_seen_ms)

    def batch(self) -> pa.RecordBatch:
        """The ``schema_drift`` rows, sorted by endpoint, path and kind."""
        rows = sorted(self.findings.items())
        return pa.RecordBatch.from_arrays(
            [
                pa.array([self.day] * len(rows), pa.date32()),
                pa.array([k[0] for k, _ in rows], pa.string()),
                pa.array([k[1] for k, _ in rows], pa.string()),
                pa.array([k[2] for k, _ in rows], pa.string()),
                pa.array([f.expected for _, f in rows], pa.string()),
                pa.array([f.example for _, f in rows], pa.string()),
                pa.array([f.count for _, f in rows], pa.int64()),
                pa.array([f.first_seen_ms for _, f in rows], pa.int64()).cast(
                    SCHEMA_DRIFT.field("first_seen").type
                ),
            ],
            schema=SCHEMA_DRIFT,
        )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _example(name: str, value: Any, kind: str) -> str | None:
    if kind == MISSING:
        return None
    if _SECRET_NAME.search(name):
        return _NO_EXAMPLE
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text[:EXAMPLE_CHARS]
