"""The simulator's dataset and its truth API, without HTTP."""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from coc_simulator.catalog import BAD_ZONE
from coc_simulator.data import (
    DAY_MS,
    HOSTILE_UUIDS,
    MAX_MARKER,
    SHANGHAI_MIDNIGHT_MS,
    Dataset,
    SimConfig,
    to_ms,
)

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
ORDER_KEYS = {
    "order_id",
    "order_name",
    "execute_uuid",
    "gmt_created",
    "gmt_finished",
    "execute_costs",
    "creator",
    "status",
    "properties",
}
INSTANCE_KEYS = {
    "id",
    "target_instance",
    "gmt_created",
    "gmt_finished",
    "execute_costs",
    "status",
    "message",
}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """The default 14 days, clock fixed at NOW."""
    return Dataset(SimConfig(now=NOW))


@pytest.fixture(scope="module")
def everything(dataset: Dataset) -> list[tuple[object, int, dict]]:
    """(ticket, batch_index, instance) for every instance that exists at NOW."""
    out = []
    for ticket in dataset.tickets_in_window(0, 2**62):
        for batch in ticket.batches:
            out += [(ticket, batch.index, i) for i in dataset.instances(ticket, batch.index)]
    return out


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b = Dataset(SimConfig(now=NOW, days=2)), Dataset(SimConfig(now=NOW, days=2))
    c = Dataset(SimConfig(now=NOW, days=2, seed=8))
    assert [a.order_record(t) for t in a.tickets_in_window(0, 2**62)] == [
        b.order_record(t) for t in b.tickets_in_window(0, 2**62)
    ]
    # Laziness must not matter: draw b's tickets in reverse order.
    for ticket in reversed(b.tickets):
        b.run(ticket)
    for ta, tb in zip(a.tickets, b.tickets, strict=True):
        for batch in ta.batches:
            assert a.instances(ta, batch.index, now=10**14) == b.instances(
                tb, batch.index, now=10**14
            )
    assert [t.execute_uuid for t in a.tickets] != [t.execute_uuid for t in c.tickets]


def test_days_end_on_the_day_of_now(dataset: Dataset) -> None:
    days = dataset.days()
    assert len(days) == 14
    assert days[-1] == NOW.date()
    assert days[0] == NOW.date() - timedelta(days=13)


def test_every_day_has_its_boundary_tickets(dataset: Dataset) -> None:
    created = {t.gmt_created for t in dataset.tickets}
    for start in dataset.day_starts:
        shanghai = start + SHANGHAI_MIDNIGHT_MS
        assert {start, start + DAY_MS - 1, shanghai - 1, shanghai, shanghai + 1} <= created
    assert to_ms(datetime(2026, 11, 24, 16, 0, tzinfo=UTC)) in created


def test_tickets_are_ordered_and_order_ids_increase(dataset: Dataset) -> None:
    created = [t.gmt_created for t in dataset.tickets]
    order_ids = [t.order_id for t in dataset.tickets]
    assert created == sorted(created)
    assert all(a < b for a, b in itertools.pairwise(order_ids))


def test_every_status_appears(dataset: Dataset, everything: list) -> None:
    now = dataset.anchor_ms
    orders = Counter(dataset.order_record(t)["status"] for t in dataset.tickets_in_window(0, now))
    assert set(orders) == {"PROCESSING", "ABNORMAL", "PAUSED", "CANCELED", "FINISHED"}
    instances = Counter(item["status"] for _, _, item in everything)
    assert set(instances) == {
        "READY",
        "PROCESSING",
        "ABNORMAL",
        "CANCELED",
        "FINISHED",
        "ROLLBACKED",
    }


def test_shapes_and_nulls(everything: list, dataset: Dataset) -> None:
    ticket = dataset.tickets[0]
    assert set(dataset.order_record(ticket)) == ORDER_KEYS
    assert set(dataset.detail(ticket)["properties"]["execute_param"]) == {
        "timeout",
        "success_rate",
        "execute_user",
        "script_params",
    }
    items = [item for _, _, item in everything]
    assert all(set(item) == INSTANCE_KEYS for item in items)
    targets = [item["target_instance"] for item in items]
    assert any(t["agent_status"] is None for t in targets)
    assert any(t["properties"]["floating_ip"] is None for t in targets)
    assert any(t["properties"]["application"] is None for t in targets)
    assert any(t["properties"]["region_id"] is None and t["region_id"] for t in targets)
    assert any(t["properties"]["project_id"] is None and t["project_id"] for t in targets)
    assert any(not t["properties"]["host_name"].isascii() for t in targets)
    assert any(t["custom_attributes"] is None for t in targets)
    assert {len(t["custom_attributes"]) for t in targets if t["custom_attributes"] is not None} == {
        0,
        1,
        2,
        3,
        4,
        5,
    }
    messages = [item["message"] for item in items if item["message"]]
    assert any(len(m) > 500 and m.count("\n") > 10 for m in messages)


def test_batches_are_irregular(dataset: Dataset) -> None:
    sizes = Counter(b.size for t in dataset.tickets for b in t.batches)
    assert {0, 1, 49, 50, 51, 100} <= set(sizes)
    assert max(sizes) <= dataset.config.max_batch_size
    gaps = 0
    for ticket in dataset.tickets:
        indexes = [b.index for b in ticket.batches]
        assert 1 <= len(indexes) <= 20
        assert indexes == sorted(set(indexes)) and indexes[0] >= 1 and indexes[-1] <= 20
        gaps += indexes != list(range(1, len(indexes) + 1))
    assert gaps >= 14  # at least the Shanghai-midnight ticket of every day


def test_instance_ids_increase_with_gaps_and_are_unique(everything: list) -> None:
    by_batch: dict[tuple, list[int]] = {}
    for ticket, index, item in everything:
        by_batch.setdefault((ticket.execute_uuid, index), []).append(item["id"])
    steps = Counter()
    for ids in by_batch.values():
        steps.update(b - a for a, b in itertools.pairwise(ids))
    assert min(steps) >= 1 and max(steps) > 1
    all_ids = [item["id"] for _, _, item in everything]
    assert len(all_ids) == len(set(all_ids))
    assert min(all_ids) > 0 and max(all_ids) <= MAX_MARKER


def test_processing_ticket_finishes_later(dataset: Dataset) -> None:
    now = dataset.anchor_ms
    running = [
        t
        for t in dataset.tickets_in_window(0, now + 1)
        if dataset.order_state(t, now)[0] == "PROCESSING"
    ]
    assert running
    ticket = running[-1]
    record = dataset.order_record(ticket)
    assert record["gmt_finished"] is None and record["execute_costs"] is None
    items = [i for b in ticket.batches for i in dataset.instances(ticket, b.index)]
    statuses = Counter(i["status"] for i in items)
    assert statuses["PROCESSING"] and statuses["READY"]
    for item in items:
        if item["status"] == "READY":
            assert item["gmt_created"] is None and item["gmt_finished"] is None
        if item["status"] in ("READY", "PROCESSING"):
            assert item["execute_costs"] is None and item["message"] is None
    later = dataset.run(ticket).settled_at
    final = dataset.order_record(ticket, now=later)
    assert final["status"] in ("FINISHED", "ABNORMAL") and final["gmt_finished"] is not None
    assert final["execute_costs"] == final["gmt_finished"] - final["gmt_created"]
    for batch in ticket.batches:
        for item in dataset.instances(ticket, batch.index, now=later):
            assert item["status"] not in ("READY", "PROCESSING")
            assert item["execute_costs"] == item["gmt_finished"] - item["gmt_created"]
    assert dataset.ticket(ticket.execute_uuid, now=ticket.gmt_created - 1) is None


def test_a_ticket_created_after_now_does_not_exist(dataset: Dataset) -> None:
    last = dataset.tickets[-1]
    assert last.gmt_created == dataset.day_starts[-1] + DAY_MS - 1
    assert dataset.ticket(last.execute_uuid) is None
    assert dataset.ticket(last.execute_uuid, now=last.gmt_created) is last
    start, end = dataset.day_window(NOW.date())
    assert last not in dataset.tickets_in_window(start, end)
    with pytest.raises(KeyError):
        dataset.detail(last.execute_uuid)


def test_query_orders_window_is_inclusive(dataset: Dataset) -> None:
    start, end = dataset.day_window("2026-11-23")
    now = dataset.anchor_ms
    total, page = dataset.query_orders(now=now, limit=100, start_ms=start, end_ms=end)
    exact = dataset.tickets_in_window(start, end)
    assert total == len(exact) + 1  # the next day's 00:00:00.000 ticket
    assert page[-1].gmt_created == end and page[:-1] == exact
    total, _ = dataset.query_orders(now=now, limit=1, start_ms=start, end_ms=end - 1)
    assert total == len(exact)
    _, second = dataset.query_orders(
        now=now, limit=5, start_ms=start, end_ms=end, marker=exact[4].order_id
    )
    assert second == exact[5:10]


def test_statistics_add_up(dataset: Dataset) -> None:
    for ticket in dataset.tickets_in_window(0, dataset.anchor_ms)[:60]:
        stats = dataset.statistics(ticket)
        assert stats["total_instance"] == sum(b.size for b in ticket.batches)
        assert (
            sum(s["instance_count"] for s in stats["execute_statistics"]) == stats["total_instance"]
        )
        indexes = {b.index for b in ticket.batches}
        for entry in stats["execute_statistics"]:
            assert set(entry["batch_indexes"]) <= indexes and entry["instance_count"] > 0


def test_minimal_requests_arithmetic(dataset: Dataset) -> None:
    start, end = dataset.day_window("2026-11-24")
    tickets = dataset.tickets_in_window(start, end)
    # each walk reads up to its first page that is not full (an empty one after a full one)
    pages = sum(b.size // 50 + 1 for t in tickets for b in t.batches if b.size)
    expected = len(tickets) // 10 + 1 + 2 * len(tickets) + pages
    assert dataset.minimal_requests(start, end, list_limit=10, page_limit=50) == expected
    one_list_page = 1 + 2 * len(tickets) + pages
    assert dataset.minimal_requests(start, end, list_limit=100, page_limit=50) == one_list_page
    # Asking the lax server for end_time=end lists the next day's first ticket too.
    listed = len(tickets) + 1
    assert (
        dataset.minimal_requests(start, end, list_limit=1, page_limit=50, query_end_ms=end)
        == listed + 1 + 2 * len(tickets) + pages
    )
    empty = dataset.day_window("2026-11-26")
    assert dataset.minimal_requests(*empty, list_limit=100, page_limit=50) == 1


_UUID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
_IP = re.compile(r"\d+\.\d+\.\d+\.\d+(:\d+)?")
_HEX = re.compile(r"\b[0-9a-f]{8,}\b")


def _mask(message: str) -> str:
    """Digits, ids and addresses masked, roughly as the failure_messages mart does."""
    message = _HEX.sub("<hex>", _IP.sub("<ip>", _UUID.sub("<id>", message)))
    return re.sub(r"\d+", "<n>", message)


def test_failures_follow_discoverable_patterns(everything: list) -> None:
    done = [
        (t, i) for t, _, i in everything if i["status"] in ("FINISHED", "ABNORMAL", "ROLLBACKED")
    ]

    def rate(pred: object) -> float:
        group = [i for t, i in done if pred(t, i)]  # type: ignore[operator]
        return sum(i["status"] == "ABNORMAL" for i in group) / len(group)

    zone = rate(lambda t, i: i["target_instance"]["properties"]["zone_id"] == BAD_ZONE)
    other_zones = rate(lambda t, i: i["target_instance"]["properties"]["zone_id"] != BAD_ZONE)
    assert zone > 3 * other_zones
    offline = rate(lambda t, i: i["target_instance"]["agent_status"] == "OFFLINE")
    online = rate(lambda t, i: i["target_instance"]["agent_status"] == "ONLINE")
    assert offline > 0.8 > 0.1 > online
    new = rate(lambda t, i: t.version.name == "v2.4.0")
    old = rate(lambda t, i: t.version.name == "v2.3.1")
    assert new > 5 * old
    failures = [i["message"] for _, i in done if i["status"] == "ABNORMAL"]
    assert len(set(failures)) > 200
    assert len({_mask(m) for m in failures}) < 80  # templates x packages, commands, ...


def test_uuids_are_short_and_url_safe_by_default(dataset: Dataset) -> None:
    uuids = [t.execute_uuid for t in dataset.tickets]
    assert len(set(uuids)) == len(uuids)
    assert all(1 <= len(u) <= 26 and quote(u, safe="") == u for u in uuids)


def test_hostile_uuids_when_asked() -> None:
    dataset = Dataset(SimConfig(now=NOW, days=3, hostile_uuids=True))
    for uuid in HOSTILE_UUIDS:
        assert len(uuid) <= 26
        ticket = dataset.ticket(uuid)
        assert ticket is not None and dataset.detail(uuid)["execute_uuid"] == uuid


def test_instances_per_day_is_exact_and_fast() -> None:
    # CPU seconds of this process, not wall time: the other test workers share the cores
    started = time.process_time()
    dataset = Dataset(SimConfig(now=NOW, days=2, instances_per_day=1_000_000))
    start, end = dataset.day_window(dataset.days()[0])
    assert dataset.instance_count(start, end) == 1_000_000
    for ticket in dataset.tickets_in_window(start, end):
        dataset.run(ticket)
    assert time.process_time() - started < 5
    small = Dataset(SimConfig(now=NOW, days=1, instances_per_day=250))
    assert small.instance_count(*small.day_window(small.days()[0]), now=10**14) == 250


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        SimConfig(days=0)
    with pytest.raises(ValueError):
        SimConfig(tickets_per_day=(5, 2))
