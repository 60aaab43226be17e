"""A replay's drift without a walk of every body: the loader's one Arrow reading of a chunk,
with the documented schema and unexpected fields an error, proves its bodies documented
(``drift.clean_by_arrow``), and only the others are walked.

The proof must never be wrong: a chunk it proves has no drift the walker would find (a
missing mapped field above all, which Arrow reads as a null). Its batch is the batch
``flatten_pages`` gives, proven or not.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.coc.models import RawPage
from pipelines.extract.pages import PendingPage, flatten_documented, flatten_pages
from pipelines.transform.drift import DriftTally
from tests.unit.test_pages import MAYBE_TEXT

DAY = dt.date(2026, 11, 25)
HOST = ("host_name", "fixed_ip", "floating_ip", "region_id", "zone_id", "application", "group")
TARGET = ("resource_id", "provider", "region_id", "project_id", "type", "agent_sn")


def record(n: int) -> dict:
    return {
        "id": n,
        "target_instance": {
            **{name: f"{name}-{n}" for name in TARGET},
            "agent_status": None,
            "custom_attributes": [{"key": "k", "value": None}],
            "properties": {**{name: None for name in HOST}, "project_id": "p"},
        },
        "gmt_created": 1,
        "gmt_finished": None,
        "execute_costs": 3,
        "status": "FINISHED",
        "message": None,
    }


def chunk(*records: dict, separators: tuple[str, str] = (",", ":")) -> list[PendingPage]:
    body = {"data": {"batch_index": 1, "total_instances": 9, "execute_instances": records}}
    text = json.dumps(body, separators=separators).encode()
    return [PendingPage("T-1", 1, RawPage(body=text, marker=0, keep=None, count=len(records)))]


def drift_of(pages: list[PendingPage]) -> dict:
    tally = DriftTally(DAY)
    for p in pages:
        tally.inspect("get_batch", p.page.body, 0)
    return tally.findings


def test_documented_bodies_with_explicit_nulls_are_proven() -> None:
    for separators in ((",", ":"), (", ", ": ")):
        pages = chunk(record(1), record(2), separators=separators)
        batch, documented = flatten_documented(pages)
        assert documented and drift_of(pages) == {}
        assert batch.equals(flatten_pages(pages))


def test_a_missing_mapped_field_is_not_proven() -> None:
    gone = record(2)
    del gone["target_instance"]["properties"]["zone_id"]  # read by Arrow as a null
    pages = chunk(record(1), gone)
    batch, documented = flatten_documented(pages)
    assert not documented
    assert list(drift_of(pages)) == [
        ("get_batch", "data.execute_instances[].target_instance.properties.zone_id", "missing")
    ]
    assert batch.equals(flatten_pages(pages))


def test_an_unexpected_field_or_type_is_not_proven() -> None:
    extra = record(2)
    extra["target_instance"]["properties"]["rack"] = "r-1"
    pages = chunk(record(1), extra)
    assert not flatten_documented(pages)[1]
    assert drift_of(pages) != {}
    # a number sent as a string where no column reads it
    (clean,) = chunk(record(1), record(2))
    body = clean.page.body.replace(b'"batch_index":1', b'"batch_index":"1"')
    changed = [clean._replace(page=RawPage(body=body, marker=0, keep=None, count=2))]
    assert not flatten_documented(changed)[1]
    assert drift_of(changed) != {}


#: a record whose every field is present (maybe null), but each one maybe left out
def _maybe_without(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy[dict]:
    present = st.fixed_dictionaries(fields)
    return st.one_of(
        present,
        present.flatmap(lambda d: st.sampled_from(sorted(d)).map(lambda k: _without(d, k))),
    )


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


PROPERTIES = _maybe_without({name: MAYBE_TEXT for name in (*HOST, "project_id")})
ATTRIBUTE = _maybe_without({"key": MAYBE_TEXT, "value": MAYBE_TEXT})
TARGET_RECORD = _maybe_without(
    {
        **{name: MAYBE_TEXT for name in (*TARGET, "agent_status")},
        "custom_attributes": st.one_of(st.none(), st.lists(ATTRIBUTE, max_size=3)),
        "properties": st.one_of(st.none(), PROPERTIES),
    }
)
NUMBER = st.one_of(st.none(), st.integers(0, 2**42))


@st.composite
def documented_pages(draw: st.DrawFn) -> list[PendingPage]:
    records = []
    for n in range(draw(st.integers(1, 6))):
        fields = draw(
            _maybe_without(
                {
                    "target_instance": st.one_of(st.none(), TARGET_RECORD),
                    "gmt_created": NUMBER,
                    "gmt_finished": NUMBER,
                    "execute_costs": NUMBER,
                    "status": MAYBE_TEXT,
                    "message": MAYBE_TEXT,
                }
            )
        )
        records.append({"id": n + 1, **fields})
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")]))
    return chunk(*records, separators=separators)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documented_pages())
def test_a_proven_chunk_has_no_drift_and_the_same_rows(pages: list[PendingPage]) -> None:
    batch, documented = flatten_documented(pages)
    if documented:
        assert drift_of(pages) == {}
    assert batch.equals(flatten_pages(pages))
