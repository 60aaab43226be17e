"""Page bodies to ``execution_instances`` in Arrow: equal to the reference path, or its errors.

The reference path (msgspec into the typed models, then ``InstanceColumns``) is the one the
flattening tests in ``test_flatten.py`` pin to the contract; the Arrow path must give the very
same record batch for every body, and must leave to the reference path every body it cannot
take as it is, so that a page off the documented schema still fails naming where it was.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.coc import errors
from pipelines.coc.models import HostProperties, RawPage, TargetInstance
from pipelines.extract.pages import PendingPage, _arrow_path, _reference_path, flatten_pages
from pipelines.transform.schemas import EXECUTION_INSTANCES
from tests.support.sample_page import PAGE

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
MAYBE_TEXT = st.one_of(st.none(), TEXT, st.sampled_from(["", "a\nb", 'q"uo\\te', "主机-01"]))


def _optional_fields(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy[dict]:
    """Objects where every field may be missing, null (if the strategy allows) or set."""
    return st.fixed_dictionaries({}, optional=fields)


ATTRIBUTE = _optional_fields({"key": TEXT, "value": MAYBE_TEXT})
PROPERTIES = _optional_fields(
    {
        **{n: MAYBE_TEXT for n in HostProperties.__struct_fields__},
        "unknown": st.just({"nested": [1, 2]}),
    }
)
TARGET = _optional_fields(
    {
        **{
            n: MAYBE_TEXT
            for n in TargetInstance.__struct_fields__
            if n not in ("custom_attributes", "properties")
        },
        "custom_attributes": st.one_of(st.none(), st.lists(ATTRIBUTE, max_size=4)),
        "properties": st.one_of(st.none(), PROPERTIES),
    }
)
INSTANCE_FIELDS = _optional_fields(
    {
        "target_instance": st.one_of(st.none(), TARGET),
        "gmt_created": st.one_of(st.none(), st.integers(0, 2**42)),
        "gmt_finished": st.one_of(st.none(), st.integers(0, 2**42)),
        "execute_costs": st.one_of(st.none(), INT64),
        "status": MAYBE_TEXT,
        "message": MAYBE_TEXT,
        "extra": st.just("ignored"),
    }
)


@st.composite
def pages(draw: st.DrawFn) -> list[PendingPage]:
    out = []
    next_id = draw(st.integers(0, 10**12))
    for n in range(draw(st.integers(1, 4))):
        records = []
        for _ in range(draw(st.integers(1, 5))):
            next_id += draw(st.integers(1, 1000))
            records.append({"id": next_id, **draw(INSTANCE_FIELDS)})
        envelope = {
            "data": {"batch_index": n + 1, "total_instances": 99, "execute_instances": records}
        }
        indent = draw(st.sampled_from([None, 2]))  # pretty-printed bodies span lines
        body = json.dumps(envelope, indent=indent, ensure_ascii=draw(st.booleans())).encode()
        keep = None
        if draw(st.booleans()):
            keep = sorted(draw(st.sets(st.integers(0, len(records) - 1), min_size=1)))
            if len(keep) == len(records):
                keep = None
        count = len(records) if keep is None else len(keep)
        page = RawPage(body=body, marker=n * 50, keep=keep, count=count)
        out.append(PendingPage(f"T-{n % 2}", n + 1, page))
    return out


def _has_keyless_attribute(chunk: list[PendingPage]) -> bool:
    for p in chunk:
        for record in json.loads(p.page.body)["data"]["execute_instances"]:
            target = record.get("target_instance") or {}
            if any(a.get("key") is None for a in target.get("custom_attributes") or []):
                return True
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages())
def test_the_arrow_path_equals_the_reference_path(chunk: list[PendingPage]) -> None:
    expected = _reference_path(chunk)
    fast = _arrow_path(chunk)
    if not _has_keyless_attribute(chunk):
        # every other body the generator makes is one the fast path must take itself
        assert fast is not None
    if fast is not None:
        assert fast.schema == EXECUTION_INSTANCES
        assert fast.to_pylist() == expected.to_pylist()
        assert fast.equals(expected)
    assert flatten_pages(chunk).equals(expected)


def _pending(body: bytes, *, count: int = 1, keep: list[int] | None = None) -> PendingPage:
    return PendingPage("T-9", 4, RawPage(body=body, marker=350, keep=keep, count=count))


def test_the_published_example_takes_the_fast_path() -> None:
    chunk = [_pending(PAGE, count=4)]
    fast = _arrow_path(chunk)
    assert fast is not None
    assert fast.equals(_reference_path(chunk))


@pytest.mark.parametrize(
    ("record", "named"),
    [
        (b'{"id": 1, "gmt_created": "yesterday"}', "gmt_created"),
        (b'{"id": "one"}', "id"),
        (b'{"id": 1.5}', "id"),
        (b'{"id": 1, "status": 3}', "status"),
        (b'{"id": 1, "target_instance": "host"}', "target_instance"),
        (b'{"id": 1, "target_instance": {"properties": []}}', "properties"),
        (b'{"id": 1, "target_instance": {"custom_attributes": [null]}}', "custom_attributes"),
        (b"null", "execute_instances"),
        (b'{"id": 1, "message": "\xff"}', "not valid UTF-8"),
    ],
)
def test_a_body_off_the_schema_fails_naming_ticket_batch_and_marker(
    record: bytes, named: str
) -> None:
    good = _pending(b'{"data": {"execute_instances": [{"id": 1}]}}')
    bad = _pending(b'{"data": {"execute_instances": [' + record + b"]}}")
    with pytest.raises(errors.ResponseError) as caught:
        flatten_pages([good, bad])
    text = str(caught.value)
    assert "ticket=T-9" in text and "batch=4" in text and "marker=350" in text
    assert named.lower() in text.lower()


def test_what_only_the_reference_path_accepts_comes_out_the_same() -> None:
    # a repeated key (the last one wins) and a key-less attribute (skipped): Arrow refuses
    # or cannot map these; the chunk goes the reference way and still loads
    body = (
        b'{"data": {"execute_instances": [{"id": 1, "status": "A", "status": "B",'
        b' "target_instance": {"custom_attributes":'
        b' [{"value": "v"}, {"key": "k", "value": "w"}]}}]}}'
    )
    chunk = [_pending(body)]
    assert _arrow_path(chunk) is None
    (row,) = flatten_pages(chunk).to_pylist()
    assert row["status"] == "B"
    assert row["custom_attributes"] == [("k", "w")]


def test_only_the_kept_records_of_a_page_are_loaded() -> None:
    body = b'{"data": {"execute_instances": [{"id": 1}, {"id": 2}, {"id": 3}]}}'
    chunk = [_pending(body, keep=[0, 2], count=2), _pending(body, count=3)]
    batch = flatten_pages(chunk)
    assert batch.column("instance_id").to_pylist() == [1, 3, 1, 2, 3]
    assert _arrow_path(chunk) is not None


def test_a_count_that_does_not_match_the_body_is_not_taken_on_trust() -> None:
    # the fetching side counted 2 records; the body holds 1: the fast path steps aside
    chunk = [_pending(b'{"data": {"execute_instances": [{"id": 1}]}}', count=2)]
    assert _arrow_path(chunk) is None
