"""The Dagster wiring: definitions load, the nightly schedule asks for the right days."""

from __future__ import annotations

import importlib
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import AssetKey, PartitionKeyRange, build_schedule_context

from assets.checks import CHECKS, WAREHOUSE_CHECKS
from assets.schedules import build_nightly_schedule, nightly_range
from pipelines.errors import ConfigError
from warehouse.build import MARTS_DIR

SECRET = "definitions-test-secret-value"


@pytest.fixture
def defs(monkeypatch: pytest.MonkeyPatch):
    for name in (
        "COC_ENDPOINT",
        "COC_AK",
        "COC_SK",
        "COC_TOKEN",
        "COC_WAREHOUSE",
        "COC_DUCKDB",
        "COC_EXECUTOR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COC_TIMEZONE", "Asia/Shanghai")
    monkeypatch.setenv("COC_SK", SECRET)
    monkeypatch.setenv("COC_AK", "AK")
    import assets.definitions as module

    return importlib.reload(module).defs


def test_definitions_hold_the_assets_checks_and_schedule(defs) -> None:
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "script_orders",
        "order_batches",
        "execution_instances",
        "warehouse",
        "failure_rates_daily",
        "host_failures",
        "failure_messages",
        "ticket_outcomes",
    } <= keys
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert {"keys_unique", "batch_counts_match", "ticket_count_matches_list"} <= checks
    schedule = defs.resolve_schedule_def("coc_nightly_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Asia/Shanghai"


def test_secrets_stay_environment_references(defs) -> None:
    coc = defs.resources["coc"]
    assert SECRET not in repr(coc)
    assert SECRET not in str(coc.__dict__)


def test_the_nightly_run_covers_yesterday_and_the_lookback(defs) -> None:
    schedule = defs.resolve_schedule_def("coc_nightly_schedule")
    when = datetime(2026, 11, 26, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    request = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=when))
    (run,) = request.run_requests
    # read back through Dagster's public API: the tags are the ones Dagster acts on
    assert run.partition_key_range == PartitionKeyRange("2026-11-22", "2026-11-25")
    assert run.run_key == "nightly-2026-11-25"


def test_nightly_range_arithmetic() -> None:
    at = datetime(2026, 3, 1, 2, 0)
    assert nightly_range(at, 3) == ("2026-02-25", "2026-02-28")
    assert nightly_range(at, 0) == ("2026-02-28", "2026-02-28")
    assert nightly_range(datetime(2024, 1, 2, 2), 3) == ("2024-01-01", "2024-01-01")


def test_checks_and_mart_descriptions_come_from_their_one_home(defs) -> None:
    """Dagster's check specs are assets.checks's table; mart descriptions are the first
    paragraph of each mart file's header comment."""
    graph = defs.resolve_asset_graph()
    specs = {
        (key.name, key.asset_key.to_user_string(), graph.get_check_spec(key).description)
        for key in graph.asset_check_keys
    }
    assert specs == {(c.name, c.asset, c.description) for c in (*CHECKS, *WAREHOUSE_CHECKS)}
    marts = sorted(MARTS_DIR.glob("*.sql"))
    assert len(marts) >= 5
    for path in marts:
        description = graph.get(AssetKey(path.stem)).description
        header = path.read_text().split("\n")[0].removeprefix(f"-- {path.stem}: ")
        assert description is not None and description.lower().startswith(header[:40].lower())
    # the marts follow the warehouse; its step updates them, so no run materializes them
    # one by one (their row counts are the warehouse's metadata: test_pipeline)
    for path in marts:
        node = graph.get(AssetKey(path.stem))
        assert node.parent_keys == {AssetKey("warehouse")}
        assert not node.is_executable
    assert graph.get(AssetKey("warehouse")).is_executable
    rates = graph.get(AssetKey("failure_rates_daily")).description
    assert rates is not None and rates.startswith("How often do script runs fail, per day")
    assert rates.endswith("One row per dt × region_id × zone_id × application × script_name.")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("COC_TIMEZONE", "Mars/Olympus", "COC_TIMEZONE='Mars/Olympus' is not a known IANA"),
        ("COC_LOOKBACK_DAYS", "abc", "COC_LOOKBACK_DAYS must be an integer"),
        ("COC_LOOKBACK_DAYS", "-1", "COC_LOOKBACK_DAYS must be within 0..90"),
    ],
)
def test_a_bad_load_time_variable_fails_the_load_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    # loaded before the variable is set: the first test of a worker may be the one to load it
    import assets.definitions as module

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        importlib.reload(module)
    monkeypatch.delenv(name)
    importlib.reload(module)  # leave a loadable module behind for other tests


def test_a_negative_lookback_is_refused_by_the_schedule_too() -> None:
    with pytest.raises(ValueError, match="COC_LOOKBACK_DAYS"):
        nightly_range(datetime(2026, 3, 1, 2, 0), -1)
    with pytest.raises(ValueError, match="COC_LOOKBACK_DAYS"):
        build_nightly_schedule("UTC", -1)


def test_steps_run_in_the_run_process_unless_told_otherwise(
    defs, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assets.definitions as module

    assert defs.resolve_job_def("coc_nightly").executor_def.name == "in_process"
    monkeypatch.setenv("COC_EXECUTOR", "multiprocess")
    reloaded = importlib.reload(module).defs
    assert reloaded.resolve_job_def("coc_nightly").executor_def.name == "multiprocess"
    with pytest.raises(ConfigError, match="COC_EXECUTOR must be one of in_process, multiprocess"):
        module.executor_from_env("threads")
