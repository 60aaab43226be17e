"""The real ``coc-etl dashboard`` in headless Chromium (Debian's, through Playwright) over a
warehouse ingested from the simulator. Screenshots go to ``tests/artifacts/``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.bi.conftest import BiWarehouse, copy_warehouse
from tests.bi.server import ARTIFACTS, CHROMIUM_ARGS, dashboard, ensure_chromium
from tests.support.dashboard_counts import raw_counts
from tests.support.lake import delete_partition
from warehouse.build import build_warehouse
from warehouse.dashboard import queries as q

pytestmark = pytest.mark.slow

PANELS = (
    "Alerts",
    "Headline",
    "Failure rate over time by region",
    "Ranked",
    "Top hosts",
    "Top message patterns",
    "Ticket drill-down",
)
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = ensure_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 4200})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def served(bi_warehouse: BiWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One dashboard process over the shared warehouse, for the tests that only read it."""
    with dashboard(bi_warehouse.duckdb_path, cwd=tmp_path_factory.mktemp("served")) as url:
        yield url


def metrics(page: Page) -> list[str]:
    return [m.inner_text() for m in page.get_by_test_id("stMetricValue").all()]


def expected_metrics(duckdb_path: Path, f: q.Filters | None = None) -> tuple[q.Filters, list[str]]:
    """The headline as the page must show it, computed from the raw views."""
    con = q.open_warehouse(duckdb_path)
    try:
        f = f or q.options(con).default_filters()
        assert f is not None
        instances, failed = raw_counts(con, f)
    finally:
        con.close()
    return f, [f"{instances:,}", f"{failed:,}", f"{failed / instances:.2%}"]


def wait_for_metrics(page: Page, expected: list[str]) -> None:
    page.wait_for_function(
        """expected => {
            const shown = [...document.querySelectorAll('[data-testid="stMetricValue"]')]
                .map(e => e.innerText.trim());
            return JSON.stringify(shown) === JSON.stringify(expected);
        }""",
        arg=expected,
        timeout=WAIT_MS,
    )


def load(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_text("Failed instances", exact=True).wait_for(timeout=WAIT_MS)
    page.wait_for_load_state("networkidle")


def squash(text: str) -> str:
    return " ".join(text.split())


def test_every_panel_renders_with_the_headline_of_duckdb(
    bi_warehouse: BiWarehouse, page: Page, served: str
) -> None:
    written = bi_warehouse.duckdb_path.read_bytes()
    url = served
    load(page, url)
    _, expected = expected_metrics(bi_warehouse.duckdb_path)
    wait_for_metrics(page, expected)
    headings = [h.inner_text() for h in page.locator("h1, h2, h3").all()]
    for panel in PANELS:
        assert any(panel in h for h in headings), (panel, headings)
    # lines by region; zones, scripts and agent statuses: each drawn by Vega
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
            .filter(c => c.querySelector('canvas, svg')).length === 4""",
        timeout=WAIT_MS,
    )
    assert page.get_by_test_id("stTable").count() >= 3
    assert page.get_by_test_id("stException").count() == 0
    alerts = page.get_by_test_id("stAlert")  # only the open episodes' warning, no error
    assert all("open alert episode(s)" in alerts.nth(i).inner_text() for i in range(alerts.count()))
    assert "Nothing computed yet" not in page.inner_text("body")  # alert_episodes exists
    con = q.open_warehouse(bi_warehouse.duckdb_path)
    f = q.options(con).default_filters()
    assert f is not None
    episodes = q.episodes(con, f)
    con.close()
    assert episodes is not None
    opened = episodes[episodes["closed"].isna()]
    assert not opened.empty, "the BI warehouse has open episodes to show"
    # open episodes at the top, each with its since (the day it is, not a timestamp) and how
    # long it has been open
    shown = squash(page.get_by_test_id("stTable").first.inner_text())
    for since, days in zip(opened["opened"], opened["days"], strict=True):
        assert pd.Timestamp(since).date().isoformat() in shown, shown
        assert f"{days} days" in shown, shown
    assert "00:00:00" not in shown, shown
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard.png")
    assert bi_warehouse.duckdb_path.read_bytes() == written  # read-only: nothing written
    assert not Path(f"{bi_warehouse.duckdb_path}.wal").exists()


def test_a_region_filter_changes_the_headline(
    bi_warehouse: BiWarehouse, page: Page, served: str
) -> None:
    url = served
    load(page, url)
    f, everything = expected_metrics(bi_warehouse.duckdb_path)
    wait_for_metrics(page, everything)
    con = q.open_warehouse(bi_warehouse.duckdb_path)
    region = q.options(con).regions[0]
    con.close()
    page.get_by_test_id("stMultiSelect").first.click()
    page.get_by_role("option", name=region, exact=True).click()
    page.keyboard.press("Escape")
    narrowed = q.Filters(start=f.start, end=f.end, regions=(region,))
    _, expected = expected_metrics(bi_warehouse.duckdb_path, narrowed)
    assert expected != everything
    wait_for_metrics(page, expected)
    assert page.get_by_test_id("stException").count() == 0
    page.screenshot(path=ARTIFACTS / "dashboard-region.png")


def test_the_drill_down_reaches_a_failed_instance_message(
    bi_warehouse: BiWarehouse, page: Page, served: str
) -> None:
    con = q.open_warehouse(bi_warehouse.duckdb_path)
    f = q.options(con).default_filters()
    assert f is not None
    second = q.tickets(con, f).iloc[1]
    row = con.execute(
        "SELECT message, host_name FROM execution_instances "
        "WHERE dt = ? AND execute_uuid = ? AND status = 'ABNORMAL' "
        "ORDER BY batch_index, instance_id LIMIT 1",
        [second["dt"].date(), second["execute_uuid"]],
    ).fetchone()
    con.close()
    assert row is not None
    message, host = row
    url = served
    load(page, url)
    ticket = page.get_by_test_id("stSelectbox").filter(has_text="Ticket")
    ticket.click()
    page.get_by_role("option").filter(has_text=str(second["execute_uuid"])).click()
    failed = page.get_by_test_id("stTable").last
    page.wait_for_function(
        "([needle]) => [...document.querySelectorAll('[data-testid=\"stTable\"]')]"
        ".some(t => t.innerText.includes(needle))",
        arg=[host],
        timeout=WAIT_MS,
    )
    assert squash(message) in squash(failed.inner_text())
    failed.scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "dashboard-drill-down.png")


def test_a_link_to_an_episode_drills_down_to_its_failed_instances(
    bi_warehouse: BiWarehouse, page: Page, served: str
) -> None:
    """What an alert's dashboard link opens: the episode picked, its key's failed instances."""
    con = q.open_warehouse(bi_warehouse.duckdb_path)
    f = q.options(con).default_filters()
    assert f is not None
    episodes = q.episodes(con, f)
    assert episodes is not None and not episodes.empty
    episode = episodes.iloc[len(episodes) - 1]  # not the first: the link must pick it
    end = episode["last_alerted"] if pd.isna(episode["closed"]) else episode["closed"]
    failed = q.episode_instances(
        con,
        episode["dimension"],
        episode["key"],
        pd.Timestamp(episode["opened"]).date(),
        pd.Timestamp(end).date(),
    )
    con.close()
    assert not failed.empty
    load(page, f"{served}/?{urlencode({'dimension': episode['dimension'], 'key': episode['key']})}")
    page.wait_for_function(  # the picker shows the linked episode (as text or its input's)
        """([label]) => [...document.querySelectorAll('[data-testid="stSelectbox"]')]
            .filter(b => b.innerText.includes('Episode'))
            .some(b => b.textContent.includes(label)
                || [...b.querySelectorAll('input')].some(i => (i.value || '').includes(label)))""",
        arg=[f"{episode['dimension']} {episode['key']} · since"],
        timeout=WAIT_MS,
    )
    page.wait_for_function(
        "([needle]) => [...document.querySelectorAll('[data-testid=\"stTable\"]')]"
        ".some(t => t.innerText.includes(needle))",
        arg=[str(failed.iloc[0]["execute_uuid"])],
        timeout=WAIT_MS,
    )
    assert f"Failed instances of the episode ({len(failed)})" in page.inner_text("body")
    page.screenshot(path=ARTIFACTS / "dashboard-episode.png")


def test_a_rebuild_shows_at_the_next_refresh_and_a_removed_file_is_explained(
    bi_warehouse: BiWarehouse, page: Page, tmp_path: Path
) -> None:
    copy = copy_warehouse(bi_warehouse, tmp_path / "wh")
    with dashboard(copy.duckdb_path, cwd=tmp_path) as url:
        load(page, url)
        f, before = expected_metrics(copy.duckdb_path)
        wait_for_metrics(page, before)
        day = copy.days[-3]
        for table in ("execution_instances", "script_orders", "order_batches"):
            delete_partition(copy.root, table, day)  # a day removed from the tables
        build_warehouse(warehouse=str(copy.root), duckdb_path=str(copy.duckdb_path))
        _, after = expected_metrics(copy.duckdb_path, f)
        assert after != before
        page.get_by_role("button", name="Refresh").click()
        wait_for_metrics(page, after)

        copy.duckdb_path.unlink()
        page.get_by_role("button", name="Refresh").click()
        error = page.get_by_test_id("stAlert").filter(has_text="no DuckDB file")
        error.wait_for(timeout=WAIT_MS)
        assert f"no DuckDB file at {copy.duckdb_path}" in error.inner_text()
        assert "make demo" in error.inner_text()
        assert not copy.duckdb_path.exists()


def test_an_empty_warehouse_says_so(page: Page, tmp_path: Path) -> None:
    built = build_warehouse(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "coc.duckdb"))
    with dashboard(Path(built.duckdb_path), cwd=tmp_path) as url:
        page.goto(url)
        info = page.get_by_test_id("stAlert")
        info.wait_for(timeout=WAIT_MS)
        assert "has no instances yet" in info.inner_text()
        assert page.get_by_test_id("stException").count() == 0


#: messages that Markdown, its math extension, Streamlit's directives or a browser would read
#: as something other than text
HOSTILE_MESSAGES = (
    "$HOME is unset … $PATH too",
    "**x** failed _twice_ ~~once~~",
    ":red[alarm] :smile: see [the docs](http://example.com) `code`",
    '<script>window.pwned = "script"</script><img src=x onerror="window.pwned = \'img\'">',
)


def test_table_cells_show_messages_exactly_as_sent(
    bi_warehouse: BiWarehouse, page: Page, tmp_path: Path
) -> None:
    copy = copy_warehouse(bi_warehouse, tmp_path / "wh")
    for path in (copy.root / "execution_instances").glob("dt=*/*.parquet"):  # not the log
        table = pq.read_table(path)
        failed = pc.equal(table["status"], "ABNORMAL").to_pylist()
        messages = [
            HOSTILE_MESSAGES[i % len(HOSTILE_MESSAGES)] if bad else message
            for i, (bad, message) in enumerate(
                zip(failed, table["message"].to_pylist(), strict=True)
            )
        ]
        column = table.schema.get_field_index("message")
        table = table.set_column(column, table.schema.field(column), pa.array(messages))
        pq.write_table(table, path)
    build_warehouse(warehouse=str(copy.root), duckdb_path=str(copy.duckdb_path), rebuild=True)
    with dashboard(copy.duckdb_path, cwd=tmp_path) as url:
        load(page, url)
        tables = page.get_by_test_id("stTable")
        patterns = tables.filter(has_text="message_pattern").first
        hosts = tables.filter(has_text="resource_id").first
        for panel, every in ((patterns, True), (hosts, False)):
            # the page draws its tables as their queries return: wait for this one's rows
            deadline = time.monotonic() + WAIT_MS / 1000
            while True:
                cells = [c.inner_text().strip() for c in panel.locator("td").all()]
                shown = [message for message in HOSTILE_MESSAGES if message in cells]
                if (shown == list(HOSTILE_MESSAGES) if every else shown) or (
                    time.monotonic() > deadline
                ):
                    break
                time.sleep(0.5)
            assert shown == list(HOSTILE_MESSAGES) if every else shown, cells
            # nothing was read as markup: no math, no bold or struck text, no link, no code
            for markup in (".katex", "strong", "em", "del", "code", "script", "img"):
                found = [e.evaluate("e => e.outerHTML") for e in panel.locator(markup).all()]
                assert found == [], markup
            # a bare address in a message is still made a link (GitHub-flavoured Markdown
            # links addresses in text, escaped or not); its text and target are as sent
            links = [(a.inner_text(), a.get_attribute("href")) for a in panel.locator("a").all()]
            assert all(text == href == "http://example.com" for text, href in links), links
        assert page.evaluate("() => window.pwned") is None
        assert page.get_by_test_id("stException").count() == 0
