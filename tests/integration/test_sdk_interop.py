"""The official Huawei SDK (``huaweicloudsdkcoc``), signing with AK/SK, against the simulator.

The SDK is a test oracle only: if its typed models parse every response and its signer's
requests are accepted, the simulator speaks the documented API.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

pytest.importorskip("huaweicloudsdkcoc")

from huaweicloudsdkcoc.v1 import (
    CocClient,
    GetScriptJobBatchRequest,
    GetScriptJobInfoRequest,
    GetScriptJobStatisticsRequest,
    ListScriptJobBatchesRequest,
    ListScriptJobsRequest,
)
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig

from coc_simulator import SimConfig, SimulatorServer

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
AK, SK, PROJECT = "SDKINTEROPAK", "sdk-interop-secret", "0b3f2c5e9d7a4f1e8c6b2a9d3e5f7a1c"


pytestmark = pytest.mark.simulator(SimConfig(now=NOW, days=2), ak=AK, sk=SK)


def sdk_client(url: str, sk: str = SK) -> CocClient:
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True  # plain http on loopback; nothing to verify
    config.timeout = (5, 30)
    return (
        CocClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(AK, sk, PROJECT))
        .with_endpoints([url])  # no region: no IAM look-ups
        .build()
    )


def test_the_sdk_walks_a_whole_day(sim: SimulatorServer) -> None:
    sim, ds = sim, sim.dataset
    client = sdk_client(sim.url)
    start, end = ds.day_window("2026-11-24")
    sim.stats.reset()

    orders, marker = [], None
    while True:
        request = ListScriptJobsRequest(limit=10, start_time=start, end_time=end - 1)
        if marker is not None:
            request.marker = marker
        page = client.list_script_jobs(request).data
        orders += page.data or []
        if not page.data or len(orders) >= page.total:
            break
        marker = page.data[-1].order_id
    truth = ds.tickets_in_window(start, end)
    assert [o.execute_uuid for o in orders] == [t.execute_uuid for t in truth]
    assert [o.status for o in orders] == [ds.order_record(t)["status"] for t in truth]

    instances = 0
    for order, ticket in zip(orders, truth, strict=True):
        uuid = order.execute_uuid
        info = client.get_script_job_info(GetScriptJobInfoRequest(execute_uuid=uuid)).data
        assert info.properties.script_name == ticket.script.name
        assert info.properties.execute_param.timeout == ticket.timeout
        batches = client.list_script_job_batches(ListScriptJobBatchesRequest(execute_uuid=uuid))
        assert [b.batch_index for b in batches.data] == [b.index for b in ticket.batches]
        for batch in batches.data:
            ids, marker = [], 0
            while len(ids) < batch.total_instances:
                request = GetScriptJobBatchRequest(
                    execute_uuid=uuid, batch_index=batch.batch_index, limit=50, marker=marker
                )
                page = client.get_script_job_batch(request).data
                assert page.total_instances == batch.total_instances
                for instance in page.execute_instances:
                    assert instance.target_instance.properties.zone_id
                    ids.append(instance.id)
                marker = ids[-1]
            truth_items = ds.instances(ticket, batch.batch_index)
            assert ids == [item["id"] for item in truth_items]
            instances += len(ids)
        statistics = client.get_script_job_statistics(
            GetScriptJobStatisticsRequest(execute_uuid=uuid)
        ).data
        assert statistics.total_instance == ticket.total_instances
        assert sum(s.instance_count for s in statistics.execute_statistics or []) == (
            ticket.total_instances
        )
        assert {
            s.instance_status: s.batch_indexes for s in statistics.execute_statistics or []
        } == {
            s["instance_status"]: s["batch_indexes"]
            for s in ds.statistics(ticket)["execute_statistics"]
        }

    assert instances == ds.instance_count(start, end) > 1000
    pages = sum(math.ceil(b.size / 50) for t in truth for b in t.batches)
    assert sim.stats.total == sim.stats.count(status=200)
    assert sim.stats.by_endpoint() == {
        "list": math.ceil(len(truth) / 10),
        "detail": len(truth),
        "batches": len(truth),
        "batch": pages,
        "statistics": len(truth),
    }


def test_the_sdk_sees_huawei_errors(sim: SimulatorServer) -> None:
    client = sdk_client(sim.url)
    with pytest.raises(ClientRequestException) as missing:
        client.get_script_job_info(GetScriptJobInfoRequest(execute_uuid="SCT-no-such-ticket"))
    assert (missing.value.status_code, missing.value.error_code) == (404, "COC.00040004")
    request = GetScriptJobBatchRequest(
        execute_uuid=sim.dataset.tickets[0].execute_uuid,
        batch_index=1,
        limit=51,
        marker=0,
    )
    with pytest.raises(ClientRequestException) as invalid:
        client.get_script_job_batch(request)
    assert (invalid.value.status_code, invalid.value.error_code) == (400, "COC.00040001")
    with pytest.raises(ClientRequestException) as unsigned:
        sdk_client(sim.url, sk="wrong").list_script_jobs(ListScriptJobsRequest())
    assert (unsigned.value.status_code, unsigned.value.error_code) == (401, "APIGW.0301")
