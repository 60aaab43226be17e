"""A batch page's ``total_instances`` is a claim the walk verifies, never a loop bound.

The walk goes on by marker until the API says the batch is done (an empty page, or a page
shorter than the limit with every stated record received). A stated total that the pages
contradict (negative, smaller than the records received, or more or fewer records than it
says by the end) is a permanent fault: the run exits 3 naming ticket, batch and marker, and
the day's previous contents stay as they were. The real ``coc-etl`` and ``dagster`` run as
subprocesses against the simulator, whose ``batch_totals`` fault states the wrong total.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from coc_etl.demo import materialize_command
from coc_simulator.data import SimConfig
from coc_simulator.model import Batch, Ticket
from coc_simulator.server import SimulatorServer
from tests.support.cli_env import cli_env
from tests.support.cli_run import COC_ETL, one_line_error, published, run

AK = "TOTALSAK"
SK = "totals-secret-key-0123456789abcdef"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = "2026-11-18"


pytestmark = pytest.mark.simulator(
    SimConfig(seed=5, days=3, now=NOW, tickets_per_day=(4, 5), max_batch_size=120), ak=AK, sk=SK
)


@pytest.fixture(scope="module")
def warehouse(module_sim: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The day ingested cleanly once: the good copy every failed run must leave alone."""
    root = tmp_path_factory.mktemp("totals") / "wh"
    done = run([COC_ETL, "ingest", DAY], cli_env(module_sim, root, ak=AK, sk=SK))
    assert done.returncode == 0, done.stderr
    return root


def _biggest_batch(sim: SimulatorServer) -> tuple[Ticket, Batch]:
    """The day's largest batch (three pages of 50 at most), and its ticket."""
    start, end = sim.dataset.day_window(DAY)
    pairs = [(t, b) for t in sim.dataset.tickets_in_window(start, end) for b in t.batches]
    ticket, batch = max(pairs, key=lambda pair: pair[1].size)
    assert 51 <= batch.size <= 150 and batch.size % 50
    return ticket, batch


@pytest.mark.parametrize(
    ("stated", "marker_at"),
    [
        # a negative total: refused on the first page
        (lambda size: -5, lambda ids: 0),
        # smaller than the records of the first two pages: refused on the second
        (lambda size: 95, lambda ids: ids[49]),
        # one fewer than the records: the walk reads past it, and the extra record is refused
        (lambda size: size - 1, lambda ids: ids[99] if len(ids) > 100 else ids[49]),
        # more than the records: the pages end short of it
        (lambda size: size + 3, lambda ids: ids[-1]),
    ],
    ids=["negative", "smaller-than-received", "one-record-more", "records-missing"],
)
def test_a_total_the_pages_contradict_exits_3_and_keeps_the_published_day(
    sim: SimulatorServer, warehouse: Path, stated, marker_at
) -> None:
    ticket, batch = _biggest_batch(sim)
    ids = [item["id"] for item in sim.dataset.instances(ticket, batch.index)]
    good = published(warehouse)
    sim.faults.batch_totals = {(ticket.execute_uuid, batch.index): stated(batch.size)}

    done = run([COC_ETL, "ingest", DAY], cli_env(sim, warehouse, ak=AK, sk=SK))

    one_line_error(
        done,
        3,
        "contradict the stated total" if stated(batch.size) >= 0 else "negative total",
        f"ticket={ticket.execute_uuid}",
        f"batch={batch.index}",
        f"marker={marker_at(ids)}",
        "no day was published",
        secrets=(SK,),
    )
    assert published(warehouse) == good


def test_a_true_total_still_reads_every_instance_with_the_minimal_requests(
    sim: SimulatorServer, warehouse: Path
) -> None:
    sim.stats.reset()
    done = run([COC_ETL, "ingest", DAY], cli_env(sim, warehouse, ak=AK, sk=SK))
    assert done.returncode == 0, done.stderr
    start, end = sim.dataset.day_window(DAY)
    minimal = sim.dataset.minimal_requests(start, end, list_limit=100, page_limit=50)
    assert sim.stats.count(status=200) == sim.stats.total == minimal


@pytest.mark.slow
def test_under_dagster_a_negative_total_fails_the_run_not_just_a_check(
    sim: SimulatorServer, warehouse: Path
) -> None:
    ticket, batch = _biggest_batch(sim)
    good = published(warehouse)
    sim.faults.batch_totals = {(ticket.execute_uuid, batch.index): -5}

    done = run(materialize_command("--partition", DAY), cli_env(sim, warehouse, ak=AK, sk=SK))

    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "negative total (-5)" in output and f"ticket={ticket.execute_uuid}" in output
    assert SK not in output
    assert published(warehouse) == good
