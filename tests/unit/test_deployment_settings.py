"""The deployment's settings: backfill fan-out, and the shared Redis in settings and reprs."""

from __future__ import annotations

import pytest

from assets.partitions import SINGLE_RUN, backfill_policy
from pipelines.errors import ConfigError
from pipelines.settings import client_settings_from_env, warehouse_settings_from_env


def test_backfills_run_whole_by_default_and_n_days_a_run_when_asked() -> None:
    assert backfill_policy("") == SINGLE_RUN
    assert backfill_policy(" 1 ").max_partitions_per_run == 1
    assert backfill_policy("3").max_partitions_per_run == 3


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5"])
def test_a_bad_days_per_run_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=rf"COC_BACKFILL_DAYS_PER_RUN .*got '{raw}'"):
        backfill_policy(raw)


def test_the_shared_redis_reaches_both_settings_and_its_password_no_repr() -> None:
    env = {
        "COC_ENDPOINT": "http://127.0.0.1:9",
        "COC_WAREHOUSE": "/tmp/wh",
        "COC_REDIS_URL": "redis://:s3cret-pass@10.0.0.5:6379/2",
    }
    client = client_settings_from_env(env)
    warehouse = warehouse_settings_from_env(env)
    assert client.redis_url == warehouse.redis_url == env["COC_REDIS_URL"]
    assert "s3cret-pass" not in repr(client) and "s3cret-pass" not in repr(warehouse)
    assert "redis://:***@10.0.0.5:6379/2" in repr(client)
    assert client_settings_from_env({"COC_ENDPOINT": "http://127.0.0.1:9"}).redis_url is None
