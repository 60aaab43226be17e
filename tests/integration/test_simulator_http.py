"""The simulator over real loopback HTTP, with plain httpx."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import orjson
import pytest

from coc_simulator import SimConfig, SimulatorServer, start_subprocess, stop_subprocess
from coc_simulator.data import HOSTILE_UUIDS, Dataset
from pipelines.coc.auth import AkSkAuth, TokenAuth

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
DAY = "2026-11-24"
ORDERS = "/v1/job/script/orders"


def seg(uuid: str) -> str:
    return quote(uuid, safe="").replace(".", "%2E")


@pytest.fixture
def client(simulator: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator.url, timeout=10) as c:
        yield c


def walk_list(client: httpx.Client, params: dict, limit: int) -> tuple[list[dict], int, int]:
    """Every record of the list by marker, up to the first page that is not full, as the
    client reads it: (records, total, requests)."""
    records: list[dict] = []
    marker = None
    requests = 0
    while True:
        query = {**params, "limit": limit} | ({"marker": marker} if marker is not None else {})
        page = client.get(ORDERS, params=query).json()["data"]
        requests += 1
        records += page["data"]
        if not page["data"] or (len(page["data"]) < limit and len(records) == page["total"]):
            return records, page["total"], requests
        marker = page["data"][-1]["order_id"]


def walk_batch(
    client: httpx.Client, uuid: str, index: int, limit: int = 50, status: str | None = None
) -> tuple[list[dict], int]:
    """Every instance of one batch by marker, up to the first page that is not full, as the
    client reads it: (instances, pages)."""
    items: list[dict] = []
    marker, pages = 0, 0
    while True:
        params = {"limit": limit, "marker": marker} | ({"status": status} if status else {})
        response = client.get(f"{ORDERS}/{seg(uuid)}/batches/{index}", params=params)
        assert response.status_code == 200, response.text
        page = response.json()["data"]
        pages += 1
        items += page["execute_instances"]
        rows = page["execute_instances"]
        whole = status is None and len(items) == page["total_instances"]
        if not rows or (len(rows) < limit and whole):
            return items, pages
        marker = page["execute_instances"][-1]["id"]


def test_list_pages_by_marker_and_matches_truth(
    simulator: SimulatorServer, client: httpx.Client
) -> None:
    ds = simulator.dataset
    start, end = ds.day_window(DAY)
    records, total, requests = walk_list(
        client, {"start_time": start, "end_time": end - 1}, limit=7
    )
    truth = ds.orders(start, end)
    assert records == truth and total == len(truth)
    assert requests == total // 7 + 1
    assert [r["order_id"] for r in records] == sorted(r["order_id"] for r in records)


def test_list_window_is_inclusive_and_filters(
    simulator: SimulatorServer, client: httpx.Client
) -> None:
    ds = simulator.dataset
    start, end = ds.day_window(DAY)
    records, total, _ = walk_list(client, {"start_time": start, "end_time": end}, limit=100)
    assert total == len(ds.tickets_in_window(start, end)) + 1
    assert records[-1]["gmt_created"] == end
    creator = records[0]["creator"]
    mine, total, _ = walk_list(client, {"start_time": start, "creator": creator}, limit=100)
    assert mine and {r["creator"] for r in mine} == {creator} and total == len(mine)
    paused, total, _ = walk_list(client, {"status": "PAUSED"}, limit=100)
    assert paused and {r["status"] for r in paused} == {"PAUSED"} and total == len(paused)
    everything, total, _ = walk_list(client, {}, limit=100)
    assert total == len(ds.tickets_in_window(0, 2**62))
    assert max(r["gmt_created"] for r in everything) <= simulator.now_ms


def test_ticket_endpoints_match_truth(simulator: SimulatorServer, client: httpx.Client) -> None:
    ds = simulator.dataset
    for ticket in ds.tickets_in_window(*ds.day_window(DAY)):
        base = f"{ORDERS}/{ticket.execute_uuid}"
        assert client.get(base).json() == {"data": ds.detail(ticket)}
        assert client.get(f"{base}/batches").json() == {"data": ds.batch_list(ticket)}
        assert client.get(f"{base}/statistics").json() == {"data": ds.statistics(ticket)}


def test_every_instance_once_with_the_minimal_requests(
    simulator: SimulatorServer, client: httpx.Client
) -> None:
    ds = simulator.dataset
    start, end = ds.day_window(DAY)
    assert simulator.warm(start, end) == ds.instance_count(start, end)
    walk_list(client, {"start_time": start, "end_time": end - 1}, 100)
    for ticket in ds.tickets_in_window(start, end):
        client.get(f"{ORDERS}/{ticket.execute_uuid}")
        batches = client.get(f"{ORDERS}/{ticket.execute_uuid}/batches").json()["data"]
        for batch in batches:
            if batch["total_instances"] == 0:
                continue
            items, pages = walk_batch(client, ticket.execute_uuid, batch["batch_index"])
            assert items == ds.instances(ticket, batch["batch_index"])
            assert pages == batch["total_instances"] // 50 + 1
    minimal = ds.minimal_requests(start, end, list_limit=100, page_limit=50)
    assert simulator.stats.total == simulator.stats.count(status=200) == minimal
    assert simulator.stats.by_endpoint()["batch"] == minimal - 1 - 2 * len(
        ds.tickets_in_window(start, end)
    )


def test_status_filter_pages_only_that_status(
    simulator: SimulatorServer, client: httpx.Client
) -> None:
    ds = simulator.dataset
    ticket = next(
        t
        for t in ds.tickets_in_window(*ds.day_window(DAY))
        if ds.order_record(t)["status"] == "ABNORMAL"
    )
    for batch in ticket.batches:
        for status in ("ABNORMAL", "FINISHED", "CANCELED"):
            items, _ = walk_batch(client, ticket.execute_uuid, batch.index, 3, status)
            assert items == ds.instances(ticket, batch.index, status=status)


def test_the_clock_decides_what_a_running_ticket_shows(
    simulator: SimulatorServer, client: httpx.Client
) -> None:
    ds = simulator.dataset
    now = simulator.now_ms
    ticket = next(
        t for t in ds.tickets_in_window(0, now + 1) if ds.order_state(t, now)[0] == "PROCESSING"
    )
    url = f"{ORDERS}/{ticket.execute_uuid}"
    assert client.get(url).json()["data"]["gmt_finished"] is None
    simulator.set_now(ds.run(ticket).settled_at)
    assert client.get(url).json()["data"]["gmt_finished"] == ds.run(ticket).end
    simulator.set_now(ticket.gmt_created - 1)
    assert client.get(url).status_code == 404


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/batches/1?limit=0&marker=0", 400, "COC.00040001"),
        ("/batches/1?limit=51&marker=0", 400, "COC.00040001"),
        ("/batches/1?limit=x&marker=0", 400, "COC.00040001"),
        ("/batches/1?limit=5&marker=-1", 400, "COC.00040001"),
        ("/batches/1?limit=5&marker=2147483648", 400, "COC.00040001"),
        ("/batches/1?marker=0", 400, "COC.00040002"),
        ("/batches/1?limit=5", 400, "COC.00040002"),
        ("/batches/1?limit=5&marker=0&status=ROLLBACKED", 400, "COC.00040001"),
        ("/batches/0?limit=5&marker=0", 400, "COC.00040001"),
        ("/batches/21?limit=5&marker=0", 400, "COC.00040001"),
        ("/batches/one?limit=5&marker=0", 400, "COC.00040001"),
        ("/batches/20?limit=5&marker=0", 404, "COC.00040005"),
        ("/nonsense", 404, "APIGW.0101"),
    ],
)
def test_validation_errors(
    simulator: SimulatorServer, client: httpx.Client, path: str, status: int, code: str
) -> None:
    ticket = simulator.dataset.tickets[0]  # batches 1..6
    response = client.get(f"{ORDERS}/{ticket.execute_uuid}{path}")
    assert response.status_code == status
    body = response.json()
    assert body["error_code"] == code and body["error_msg"]


def test_unknown_and_overlong_tickets_and_bad_list_params(client: httpx.Client) -> None:
    missing = client.get(f"{ORDERS}/SCT00000000000000000000000")
    assert missing.status_code == 404 and missing.json()["error_code"] == "COC.00040004"
    overlong = client.get(f"{ORDERS}/{'x' * 27}/batches")
    assert overlong.status_code == 400 and "26" in overlong.json()["error_msg"]
    for params in (
        {"limit": 0},
        {"limit": 101},
        {"status": "DONE"},
        {"start_time": 5, "end_time": 4},
    ):
        assert client.get(ORDERS, params=params).status_code == 400
    assert client.post(ORDERS).status_code == 405


def test_hostile_uuids_are_one_path_segment() -> None:
    config = SimConfig(now=NOW, days=3, hostile_uuids=True)
    signer = AkSkAuth(ak="AK1", sk="s3cr3t")
    with (
        SimulatorServer(config, ak="AK1", sk="s3cr3t") as sim,
        httpx.Client(base_url=sim.url, auth=signer) as client,
    ):
        for uuid in HOSTILE_UUIDS:
            ticket = sim.dataset.ticket(uuid)
            assert ticket is not None
            detail = client.get(f"{ORDERS}/{seg(uuid)}")
            assert detail.json() == {"data": sim.dataset.detail(uuid)}
            index = ticket.batches[0].index
            items, _ = walk_batch(client, uuid, index)
            assert items == sim.dataset.instances(uuid, index)


def test_aksk_signatures_are_verified() -> None:
    dataset = Dataset(SimConfig(now=NOW, days=1))
    with SimulatorServer(dataset=dataset, ak="AK1", sk="s3cr3t") as sim:
        signed = httpx.Client(base_url=sim.url, auth=AkSkAuth(ak="AK1", sk="s3cr3t"))
        wrong = httpx.Client(base_url=sim.url, auth=AkSkAuth(ak="AK1", sk="guess"))
        unknown = httpx.Client(base_url=sim.url, auth=AkSkAuth(ak="AK2", sk="s3cr3t"))
        bare = httpx.Client(base_url=sim.url)
        with signed, wrong, unknown, bare:
            params = {"limit": 5, "creator": "张伟 x+y/z"}
            assert signed.get(ORDERS, params=params).status_code == 200
            for client in (wrong, unknown, bare):
                response = client.get(ORDERS, params=params)
                assert response.status_code == 401
                assert response.json()["error_code"] == "APIGW.0301"
                assert response.json()["error_msg"].startswith(
                    "Incorrect IAM authentication information"
                )
                assert "s3cr3t" not in response.text
        assert sim.stats.count(status=401) == 3


def test_tokens_are_required() -> None:
    with SimulatorServer(SimConfig(now=NOW, days=1), token="tok-123") as sim:
        good = httpx.Client(base_url=sim.url, auth=TokenAuth(token="tok-123"))
        bad = httpx.Client(base_url=sim.url, auth=TokenAuth(token="tok-999"))
        with good, bad, httpx.Client(base_url=sim.url) as bare:
            assert good.get(ORDERS).status_code == 200
            assert bad.get(ORDERS).status_code == 401
            assert bare.get(ORDERS).json()["error_code"] == "APIGW.0301"


# -- faults --------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_and_without_retry_after(
    simulator: SimulatorServer, client: httpx.Client
) -> None:
    simulator.faults.update(rate_limit=0.5, rate_burst=2)
    statuses = [client.get(ORDERS) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 429, 429]
    assert statuses[2].headers["retry-after"] == "2"
    assert statuses[2].json()["error_code"] == "APIGW.0308"
    simulator.faults.retry_after = False
    assert "retry-after" not in client.get(ORDERS).headers
    assert simulator.stats.faults()["rate_limited"] == 3


def test_error_rate_latency_and_queued_statuses(
    simulator: SimulatorServer, client: httpx.Client
) -> None:
    simulator.faults.error_rate = 1.0
    statuses = {client.get(ORDERS).status_code for _ in range(40)}
    assert statuses == {500, 502, 503, 504}
    simulator.faults.reset()
    simulator.faults.latency_ms = 150
    started = time.perf_counter()
    assert client.get(ORDERS).status_code == 200
    assert time.perf_counter() - started >= 0.15
    simulator.faults.reset()
    simulator.faults.update(retry_after_s=0)
    simulator.faults.queue(503, 429, 502)
    answers = [client.get(ORDERS) for _ in range(4)]
    assert [a.status_code for a in answers] == [503, 429, 502, 200]
    assert answers[1].headers["retry-after"] == "0"
    assert simulator.stats.faults() == {"error": 40, "queued": 3}


@pytest.mark.parametrize("mode", ["mid_body", "headers_only"])
def test_dropped_connections(simulator: SimulatorServer, client: httpx.Client, mode: str) -> None:
    simulator.faults.update(drop_rate=1.0, drop_mode=mode)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(ORDERS)
    simulator.faults.drop_rate = 0.0
    assert client.get(ORDERS).status_code == 200
    assert simulator.stats.by_status() == {0: 1, 200: 1}


def test_forced_status_per_ticket(simulator: SimulatorServer, client: httpx.Client) -> None:
    one, other = simulator.dataset.tickets[0], simulator.dataset.tickets[1]
    simulator.faults.forced = {one.execute_uuid: 403}
    for suffix in ("", "/batches", "/statistics", "/batches/2?limit=5&marker=0"):
        response = client.get(f"{ORDERS}/{one.execute_uuid}{suffix}")
        assert response.status_code == 403 and response.json()["error_code"]
    assert client.get(f"{ORDERS}/{other.execute_uuid}").status_code == 200
    assert client.get(ORDERS).status_code == 200


def test_stuck_marker_and_page_clamp(simulator: SimulatorServer, client: httpx.Client) -> None:
    ticket = simulator.dataset.tickets[0]  # batch 5 holds 51 instances
    url = f"{ORDERS}/{ticket.execute_uuid}/batches/5"
    simulator.faults.stuck = {(ticket.execute_uuid, 5)}
    first = client.get(url, params={"limit": 50, "marker": 0}).json()["data"]
    marker = first["execute_instances"][-1]["id"]
    again = client.get(url, params={"limit": 50, "marker": marker}).json()["data"]
    assert again == first
    simulator.faults.reset()
    simulator.faults.page_clamp = 7
    page = client.get(url, params={"limit": 50, "marker": 0}).json()["data"]
    assert len(page["execute_instances"]) == 7 and page["total_instances"] == 51
    listed = client.get(ORDERS, params={"limit": 100}).json()["data"]
    assert len(listed["data"]) == 7 and listed["total"] > 7
    items, pages = walk_batch(client, ticket.execute_uuid, 5)
    assert len(items) == 51 and pages == 8


def test_invalid_bodies(simulator: SimulatorServer, client: httpx.Client) -> None:
    simulator.faults.invalid_body_rate = 1.0
    for _ in range(5):
        response = client.get(ORDERS)
        assert response.status_code == 200
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(response.content)
    assert simulator.stats.faults() == {"invalid_body": 5}


def test_stats_count_and_reset(simulator: SimulatorServer, client: httpx.Client) -> None:
    ticket = simulator.dataset.tickets[0]
    client.get(ORDERS)
    client.get(f"{ORDERS}/{ticket.execute_uuid}/statistics")
    client.get(f"{ORDERS}/{ticket.execute_uuid}/batches/3", params={"limit": 9, "marker": 0})
    client.get(f"{ORDERS}/nope")
    assert simulator.stats.by_endpoint() == {"list": 1, "statistics": 1, "batch": 1, "detail": 1}
    assert simulator.stats.count("detail", 404) == 1
    last = simulator.stats.records()[2]
    assert (last.execute_uuid, last.batch_index, last.marker, last.limit) == (
        ticket.execute_uuid,
        3,
        0,
        9,
    )
    simulator.stats.reset()
    assert simulator.stats.total == 0 and simulator.stats.records() == []


def test_cli_in_a_subprocess_never_prints_secrets() -> None:
    process, url = start_subprocess(
        ["--now", NOW.isoformat(), "--days", "2", "--ak", "AK9", "--sk", "very-secret-sk"],
        stderr=subprocess.PIPE,
    )
    try:
        signed = httpx.get(f"{url}{ORDERS}", auth=AkSkAuth(ak="AK9", sk="very-secret-sk"))
        assert signed.status_code == 200 and signed.json()["data"]["total"] > 0
        assert httpx.get(f"{url}{ORDERS}").status_code == 401
    finally:
        assert stop_subprocess(process) == 0
    assert process.stderr is not None
    logged = process.stderr.read()
    assert "AK/SK" in logged and "very-secret-sk" not in logged
