"""The client against the simulator over real loopback HTTP (and HTTPS): faults, permanent
errors, hostile ids, signing through the production transport."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from pipelines.coc import errors
from pipelines.coc.client import CocClient
from pipelines.coc.models import RawPage
from pipelines.coc.pagination import decode_instances
from pipelines.coc.settings import ClientSettings
from pipelines.extract.walk import TicketRead, walk_day

AK = "HTTPTESTAK"
SK = "http-test-secret-key-abcdef0123456789"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


pytestmark = pytest.mark.simulator(
    SimConfig(seed=5, days=3, now=NOW, hostile_uuids=True), ak=AK, sk=SK
)


def _settings(url: str, **kw: Any) -> ClientSettings:
    base: dict[str, Any] = {"endpoint": url, "ak": AK, "sk": SK, "max_rps": None}
    return ClientSettings(**(base | kw))


class Recorder:
    """A sink that decodes every page it gets and keeps the fields compared with the truth."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, int, str | None, str | None]] = []
        self.tickets: list[str] = []

    def instances(self, uuid: str, batch: int, page: RawPage) -> None:
        instances = decode_instances(page, ticket=uuid, batch=batch)
        self.rows.extend((uuid, batch, i.id, i.status, i.message) for i in instances)

    def ticket(self, read: TicketRead) -> None:
        self.tickets.append(read.execute_uuid)


def _walk(settings: ClientSettings, day) -> tuple[Recorder, CocClient]:
    from zoneinfo import ZoneInfo

    async def main() -> tuple[Recorder, CocClient]:
        rec = Recorder()
        async with CocClient(settings) as client:
            await walk_day(client, day=day, tz=ZoneInfo("UTC"), sink=rec)
        return rec, client

    return asyncio.run(main())


def _truth(sim: SimulatorServer, day) -> list[tuple]:
    start, end = sim.dataset.day_window(day)
    rows = []
    for t in sim.dataset.tickets_in_window(start, end, now=NOW):
        for b in t.batches:
            for item in sim.dataset.instances(t, b.index, now=NOW):
                rows.append((t.execute_uuid, b.index, item["id"], item["status"], item["message"]))
    return sorted(rows)


def _hostile_day(sim: SimulatorServer):
    hostile = [t for t in sim.dataset.tickets if not t.execute_uuid.isalnum()]
    odd = [t for t in hostile if any(c in t.execute_uuid for c in "/?#% ")]
    assert odd, "the dataset should hold hostile ids"
    return datetime.fromtimestamp(odd[0].gmt_created / 1000, UTC).date(), odd


def test_hostile_ids_are_one_path_segment_and_signed_correctly(sim: SimulatorServer) -> None:
    day, odd = _hostile_day(sim)
    rec, _ = _walk(_settings(sim.url), day)
    assert sorted(rec.rows) == _truth(sim, day)
    on_day = [
        t.execute_uuid
        for t in odd
        if t.gmt_created // 86_400_000 == odd[0].gmt_created // 86_400_000
    ]
    assert set(on_day) <= set(rec.tickets)
    assert sim.stats.count(status=401) == 0 and sim.stats.count(status=404) == 0


def test_heavy_transient_faults_change_nothing(sim: SimulatorServer) -> None:
    day = NOW.date().replace(day=NOW.day - 1)
    clean, _ = _walk(_settings(sim.url), day)
    sim.faults.update(error_rate=0.25, drop_rate=0.15, seed=3)
    sim.stats.reset()
    # 40% of answers fail: with 8 attempts one request in about 1,500 fails all of them, so a
    # day of hundreds of requests often does; with 20 attempts it is one in ~10^8
    faulty, client = _walk(_settings(sim.url, max_attempts=20), day)
    assert sorted(faulty.rows) == sorted(clean.rows) == _truth(sim, day)
    assert client.metrics.retries > 30
    assert client.metrics.server_errors > 0 and client.metrics.transport_errors > 0


def test_rate_limit_answers_are_waited_out(sim: SimulatorServer) -> None:
    day = NOW.date().replace(day=NOW.day - 1)
    sim.faults.queue(429, 429, 503)
    sim.faults.update(retry_after_s=1)
    started = time.monotonic()
    rec, client = _walk(_settings(sim.url), day)
    assert sorted(rec.rows) == _truth(sim, day)
    assert client.metrics.throttled == 2
    assert time.monotonic() - started >= 1.0  # the Retry-After was honoured


def test_bad_signature_fails_at_once_with_the_typed_error(sim: SimulatorServer) -> None:
    async def main() -> None:
        async with CocClient(_settings(sim.url, sk="not-the-right-secret")) as client:
            with pytest.raises(errors.AuthenticationError) as caught:
                await client.list_orders_page(start_ms=0, end_ms=1)
            assert caught.value.status == 401 and caught.value.error_code
            assert client.metrics.requests == 1
            assert "not-the-right-secret" not in str(caught.value)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, errors.BadRequestError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
    ],
)
def test_permanent_statuses_are_not_retried(sim: SimulatorServer, status: int, kind) -> None:
    victim = sim.dataset.tickets[0].execute_uuid
    sim.faults.update(forced={victim: status})

    async def main() -> None:
        async with CocClient(_settings(sim.url)) as client:
            with pytest.raises(kind) as caught:
                await client.get_order(victim)
            assert client.metrics.requests == 1
            assert caught.value.ticket == victim and victim in str(caught.value)
            assert caught.value.error_code and caught.value.error_msg

    asyncio.run(main())


def test_unknown_ticket_is_a_404(sim: SimulatorServer) -> None:
    async def main() -> None:
        async with CocClient(_settings(sim.url)) as client:
            with pytest.raises(errors.NotFoundError) as caught:
                await client.list_batches("no-such-ticket")
            assert caught.value.status == 404 and "no-such-ticket" in str(caught.value)

    asyncio.run(main())


def test_a_stuck_marker_names_ticket_batch_and_marker(sim: SimulatorServer) -> None:
    ticket = next(
        t
        for t in sim.dataset.tickets
        if any(b.size > 120 for b in t.batches) and t.gmt_created < int(NOW.timestamp() * 1000)
    )
    batch = next(b for b in ticket.batches if b.size > 120)
    sim.faults.update(stuck={(ticket.execute_uuid, batch.index)})

    async def main() -> None:
        async with CocClient(_settings(sim.url)) as client:
            with pytest.raises(errors.PagingError) as caught:
                async for _ in client.iter_batch(ticket.execute_uuid, batch.index):
                    pass
            text = str(caught.value)
            assert f"ticket={ticket.execute_uuid}" in text
            assert f"batch={batch.index}" in text and "marker=" in text

    asyncio.run(main())


# -- HTTPS with a private certificate authority --------------------------------------------


def _make_ca(tmp: Path) -> tuple[Path, Path, Path]:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    (tmp / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    )
    return tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"


@pytest.fixture
def tls_url(sim: SimulatorServer, tmp_path: Path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    ca, cert, key = _make_ca(tmp_path)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        sim.app,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_config=None,
        log_level="error",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"https://127.0.0.1:{port}", ca
    server.should_exit = True
    thread.join(5)


def test_https_needs_the_private_ca_and_works_with_it(tls_url) -> None:
    url, ca = tls_url

    async def call(settings: ClientSettings) -> int:
        async with CocClient(settings) as client:
            page = await client.list_orders_page(start_ms=0, end_ms=2**41)
            return page.total or 0

    with pytest.raises(errors.ConfigError) as caught:
        asyncio.run(call(_settings(url, max_attempts=2)))
    assert "COC_CA_BUNDLE" in str(caught.value)
    assert asyncio.run(call(_settings(url, ca_bundle=str(ca)))) > 0
    assert asyncio.run(call(_settings(url, ca_bundle=str(ca), transport="httpx"))) > 0


def test_progress_goes_to_the_callers_report(sim: SimulatorServer) -> None:
    from zoneinfo import ZoneInfo

    lines: list[str] = []

    async def main() -> None:
        async with CocClient(_settings(sim.url)) as client:
            await walk_day(
                client,
                day=NOW.date().replace(day=NOW.day - 1),
                tz=ZoneInfo("UTC"),
                sink=Recorder(),
                progress_every=5,
                report=lines.append,
            )

    asyncio.run(main())
    assert lines and all("tickets" in line and "instances/s" in line for line in lines)
