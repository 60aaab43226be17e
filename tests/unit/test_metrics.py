"""RequestMetrics: a typed value; what a part of a run cost is a difference of snapshots."""

from __future__ import annotations

from pipelines.coc.metrics import RequestMetrics


def _counted(**calls: int) -> RequestMetrics:
    m = RequestMetrics()
    for endpoint, n in calls.items():
        for _ in range(n):
            m.sent(endpoint)
    return m


def test_sent_counts_requests_per_endpoint() -> None:
    m = _counted(get_batch=3, list_orders=1)
    assert m.requests == 4 and m.by_endpoint == {"get_batch": 3, "list_orders": 1}


def test_a_snapshot_does_not_follow_later_counting() -> None:
    m = _counted(get_batch=2)
    m.retries = 1
    before = m.snapshot()
    m.sent("get_batch")
    m.sent("get_order")
    m.retries += 2
    m.throttled += 1
    assert before == RequestMetrics(requests=2, retries=1, by_endpoint={"get_batch": 2})
    assert m - before == RequestMetrics(
        requests=2, retries=2, throttled=1, by_endpoint={"get_batch": 1, "get_order": 1}
    )


def test_sum_of_days_adds_every_count() -> None:
    one = RequestMetrics(requests=5, retries=1, server_errors=1, bytes_received=100)
    one.by_endpoint["get_batch"] = 5
    two = RequestMetrics(requests=3, throttled=2, transport_errors=1, bad_bodies=1)
    two.by_endpoint.update(get_batch=1, statistics=2)
    total = sum([one, two], RequestMetrics())
    assert total == RequestMetrics(
        requests=8,
        retries=1,
        throttled=2,
        server_errors=1,
        transport_errors=1,
        bad_bodies=1,
        bytes_received=100,
        by_endpoint={"get_batch": 6, "statistics": 2},
    )
    assert total - two == one  # an endpoint that nets to zero is left out
    assert one.requests == 5 and two.by_endpoint == {"get_batch": 1, "statistics": 2}
