"""A page whose ids page fine but whose records are off the documented schema, over real HTTP.

The fetching loop decodes only ids; the flattening thread finds the mistyped field. The day
must fail naming the ticket, batch and marker of that page, and the published day must stay
byte for byte as it was.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from coc_simulator.data import SimConfig
from pipelines.coc import errors
from pipelines.coc.settings import ClientSettings
from pipelines.coc.transport import AiohttpTransport
from pipelines.extract.walk import day_window
from pipelines.ingest import ingest_days
from pipelines.settings import WarehouseSettings
from tests.support.simulator import Simulators

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = date(2026, 11, 19)


class SpoilOnePage(AiohttpTransport):
    """Real HTTP; the answer to one batch page gets its first ``message`` turned into a number."""

    def __init__(self, path_suffix: str, marker: str) -> None:
        super().__init__()
        self.path_suffix = path_suffix
        self.marker = marker
        self.spoiled = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        url = request.url
        if url.path.endswith(self.path_suffix) and url.params.get("marker") == self.marker:
            body = response.content.replace(b'"message":', b'"message":12,"was":', 1)
            self.spoiled += 1
            return httpx.Response(response.status_code, content=body, request=request)
        return response


def test_a_mistyped_record_fails_the_day_naming_its_page(
    simulators: Simulators, tmp_path: Path
) -> None:
    sim = simulators.start(SimConfig(seed=5, days=2, now=NOW))
    settings = ClientSettings(endpoint=sim.url, max_rps=None)
    wh = WarehouseSettings(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "c.duckdb"))
    (first,) = ingest_days(settings, wh, [DAY])
    assert first.rows > 1000
    before = {p: p.read_bytes() for p in tmp_path.glob("*/dt=*/*.parquet")}

    start, end = day_window(DAY, UTC)  # type: ignore[arg-type]
    ticket, batch = next(
        (t, b)
        for t in sim.dataset.tickets_in_window(start, end, now=NOW)
        for b in t.batches
        if b.size > 120
    )
    second_page_marker = str(sim.dataset.run(ticket).batches[batch.index - 1].ids[49])
    spoiler = SpoilOnePage(f"/{ticket.execute_uuid}/batches/{batch.index}", second_page_marker)
    with pytest.raises(errors.ResponseError) as caught:
        ingest_days(settings, wh, [DAY], transport=spoiler)
    assert spoiler.spoiled == 1  # read once: the ids decoded, so the client had no reason to retry
    text = str(caught.value)
    assert f"ticket={ticket.execute_uuid}" in text
    assert f"batch={batch.index}" in text
    assert f"marker={second_page_marker}" in text
    assert "message" in text
    after = {p: p.read_bytes() for p in tmp_path.glob("*/dt=*/*.parquet")}
    assert after == before
    assert not list((tmp_path / "_staging").glob("*/*"))
