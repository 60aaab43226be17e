"""Settings from ``COC_*`` values: what is required, what is refused, what is hidden."""

from __future__ import annotations

import os
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from pipelines.errors import ConfigError
from pipelines.locks.day import DEFAULT_LOCK_TIMEOUT_S
from pipelines.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RPS,
    DEFAULT_RETRY_BUDGET_S,
    FIRST_DAY,
    MAX_CONCURRENCY,
    ClientSettings,
    check_day_range,
    client_settings_from_env,
    lookback_days_from_env,
    timezone_from_env,
    warehouse_settings_from_env,
)

SK = "SK-must-not-show-9a8b7c6d5e"
TOKEN = "TOKEN-must-not-show-MIIZ12345"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The functions read only the mapping they are given; a stray COC_* in the process
    environment must change nothing (and is removed so no test depends on it)."""
    for name in list(os.environ):
        if name.startswith("COC_"):
            monkeypatch.delenv(name)


def test_missing_endpoint_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COC_ENDPOINT", "https://from-the-process.example.com")
    for env in ({}, {"COC_ENDPOINT": ""}, {"COC_ENDPOINT": "   "}):
        with pytest.raises(ConfigError, match="COC_ENDPOINT"):
            client_settings_from_env(env)


def test_defaults() -> None:
    s = client_settings_from_env({"COC_ENDPOINT": "https://coc.example.com"})
    assert s.endpoint == "https://coc.example.com"
    assert (s.max_rps, s.concurrency) == (DEFAULT_MAX_RPS, DEFAULT_CONCURRENCY)
    assert s.ak is s.sk is s.token is s.project_id is s.ca_bundle is None
    assert s.auth_kind == "none"


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://coc.example.com",
        "http://10.0.0.5:8080",
        "http://192.168.1.1",
        "http://localhost.evil.example.com",
        "http://127.0.0.1.nip.io",
        "http://[2001:db8::1]:8080",
    ],
)
def test_plain_http_off_loopback_is_refused(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="http://") as info:
        client_settings_from_env({"COC_ENDPOINT": endpoint, "COC_TOKEN": TOKEN})
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1",
        "http://127.0.0.1:8080/",
        "http://127.9.9.9:9",
        "http://localhost",
        "http://LOCALHOST:5000",
        "http://[::1]",
        "http://[::1]:8443/prefix",
        "https://coc.cn-north-4.myhuaweicloud.com",
        "https://10.0.0.5:8443",
        "https://[2001:db8::1]",
    ],
)
def test_loopback_http_and_https_anywhere_are_accepted(endpoint: str) -> None:
    s = client_settings_from_env({"COC_ENDPOINT": endpoint})
    assert s.endpoint == endpoint


@pytest.mark.parametrize("endpoint", ["ftp://coc.example.com", "coc.example.com", "https://"])
def test_non_http_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="COC_ENDPOINT"):
        client_settings_from_env({"COC_ENDPOINT": endpoint})


@pytest.mark.parametrize(
    "env", [{"COC_AK": "AK1"}, {"COC_SK": SK}], ids=["ak-without-sk", "sk-without-ak"]
)
def test_half_an_access_key_pair_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="COC_AK and COC_SK") as info:
        client_settings_from_env({"COC_ENDPOINT": "https://coc.example.com", **env})
    assert SK not in str(info.value) and SK not in repr(info.value)


def test_credentials_are_read_and_hidden_from_repr() -> None:
    env = {
        "COC_ENDPOINT": "https://coc.example.com",
        "COC_AK": "AK1",
        "COC_SK": SK,
        "COC_PROJECT_ID": "proj-9",
        "COC_CA_BUNDLE": "/etc/ssl/private-ca.pem",
    }
    s = client_settings_from_env(env)
    assert (s.ak, s.sk, s.token, s.project_id) == ("AK1", SK, None, "proj-9")
    assert s.ca_bundle == "/etc/ssl/private-ca.pem"
    assert s.auth_kind == "aksk"
    shown = repr(s) + str(s) + f"{s!r}"
    assert SK not in shown
    assert "AK1" in shown and "proj-9" in shown and "<hidden>" in shown


def test_token_only_settings_hide_the_token() -> None:
    s = ClientSettings(endpoint="http://127.0.0.1:9", token=TOKEN)
    assert s.auth_kind == "token"
    assert TOKEN not in repr(s) and "token='<hidden>'" in repr(s)
    assert "sk=None" in repr(s)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"COC_MAX_RPS": "fast"}, "COC_MAX_RPS"),
        ({"COC_MAX_RPS": "-3"}, "COC_MAX_RPS"),
        ({"COC_CONCURRENCY": "eight"}, "COC_CONCURRENCY"),
        ({"COC_CONCURRENCY": "2.5"}, "COC_CONCURRENCY"),
        ({"COC_CONCURRENCY": "0"}, "COC_CONCURRENCY"),
        ({"COC_CONCURRENCY": str(MAX_CONCURRENCY + 1)}, "COC_CONCURRENCY"),
        ({"COC_CONCURRENCY": "1000000"}, "COC_CONCURRENCY"),
        ({"COC_CONCURRENCY": str(10**12)}, "COC_CONCURRENCY"),
        ({"COC_MAX_RPS": "nan"}, "COC_MAX_RPS"),
        ({"COC_MAX_RPS": "inf"}, "COC_MAX_RPS"),
        ({"COC_MAX_RPS": "0.001"}, "COC_MAX_RPS"),
        ({"COC_MAX_RPS": "1e9"}, "COC_MAX_RPS"),
        ({"COC_MAX_ATTEMPTS": "0"}, "COC_MAX_ATTEMPTS"),
        ({"COC_MAX_ATTEMPTS": "many"}, "COC_MAX_ATTEMPTS"),
        ({"COC_MAX_ATTEMPTS": "101"}, "COC_MAX_ATTEMPTS"),
        ({"COC_RETRY_BUDGET_S": "-1"}, "COC_RETRY_BUDGET_S"),
        ({"COC_RETRY_BUDGET_S": "nan"}, "COC_RETRY_BUDGET_S"),
        ({"COC_RETRY_BUDGET_S": "1e12"}, "COC_RETRY_BUDGET_S"),
    ],
)
def test_bad_numbers_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        client_settings_from_env({"COC_ENDPOINT": "https://coc.example.com", **env})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("25", 25.0), (" 7.5 ", 7.5), ("", DEFAULT_MAX_RPS), ("0", None), ("unlimited", None)],
)
def test_max_rps_parsing(raw: str, expected: float | None) -> None:
    s = client_settings_from_env({"COC_ENDPOINT": "https://x.example", "COC_MAX_RPS": raw})
    assert s.max_rps == expected


def test_concurrency_parsing() -> None:
    s = client_settings_from_env({"COC_ENDPOINT": "https://x.example", "COC_CONCURRENCY": " 16 "})
    assert s.concurrency == 16
    top = {"COC_ENDPOINT": "https://x.example", "COC_CONCURRENCY": str(MAX_CONCURRENCY)}
    assert client_settings_from_env(top).concurrency == MAX_CONCURRENCY


def test_retry_budget_settings() -> None:
    base = {"COC_ENDPOINT": "https://x.example"}
    s = client_settings_from_env(base)
    assert (s.max_attempts, s.retry_budget_s) == (DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BUDGET_S)
    s = client_settings_from_env({**base, "COC_MAX_ATTEMPTS": "20", "COC_RETRY_BUDGET_S": "1800"})
    assert (s.max_attempts, s.retry_budget_s) == (20, 1800.0)


def test_keys_and_token_together_are_refused() -> None:
    env = {"COC_ENDPOINT": "https://x.example", "COC_AK": "AK1", "COC_SK": SK, "COC_TOKEN": TOKEN}
    with pytest.raises(ConfigError, match="COC_TOKEN") as info:
        client_settings_from_env(env)
    assert SK not in str(info.value) and TOKEN not in str(info.value)


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://user:pa55word@coc.example.com",
        "https://pa55word@coc.example.com",
        "http://user:pa55word@127.0.0.1:8080",
        "https://user:pa55word@[::1",
    ],
)
def test_credentials_inside_the_endpoint_are_refused_unechoed(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="COC_ENDPOINT must not contain") as info:
        client_settings_from_env({"COC_ENDPOINT": endpoint})
    assert "pa55word" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [("-1", "within 0..90"), ("abc", "must be an integer"), ("91", "within"), ("1.5", "integer")],
)
def test_lookback_days_is_bounded_and_named(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"COC_LOOKBACK_DAYS.*{message}"):
        lookback_days_from_env({"COC_LOOKBACK_DAYS": raw})
    assert lookback_days_from_env({}) == 3
    assert lookback_days_from_env({"COC_LOOKBACK_DAYS": "0"}) == 0


def test_timezone_from_env() -> None:
    assert timezone_from_env({}) == "UTC"
    assert timezone_from_env({"COC_TIMEZONE": " Asia/Shanghai "}) == "Asia/Shanghai"
    with pytest.raises(ConfigError, match="COC_TIMEZONE"):
        timezone_from_env({"COC_TIMEZONE": "Mars/Olympus"})


def test_day_lock_timeout_setting() -> None:
    base = {"COC_WAREHOUSE": "/tmp/wh"}
    assert warehouse_settings_from_env(base).day_lock_timeout_s == DEFAULT_LOCK_TIMEOUT_S
    w = warehouse_settings_from_env({**base, "COC_DAY_LOCK_TIMEOUT_S": "2.5"})
    assert w.day_lock_timeout_s == 2.5
    for raw in ("-1", "nan", "soon", "1e9"):
        with pytest.raises(ConfigError, match="COC_DAY_LOCK_TIMEOUT_S"):
            warehouse_settings_from_env({**base, "COC_DAY_LOCK_TIMEOUT_S": raw})


UTC_ZONE = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        (date(2023, 12, 31), date(2023, 12, 31), "before 2024-01-01"),
        (date(1, 1, 1), date(2024, 1, 2), "before 2024-01-01"),
        (date(2026, 11, 21), date(2026, 11, 21), "in the future"),
        (date(9999, 12, 31), date(9999, 12, 31), "in the future"),
        (date(2026, 11, 1), date(9999, 12, 31), "--to 9999-12-31 is in the future"),
        (date(2026, 11, 10), date(2026, 11, 9), "--to 2026-11-09 is before"),
    ],
)
def test_day_range_is_checked(first: date, last: date, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_day_range(first, last, tz=UTC_ZONE, today=date(2026, 11, 20))


def test_day_range_accepts_the_first_day_through_today() -> None:
    check_day_range(FIRST_DAY, date(2026, 11, 20), tz=UTC_ZONE, today=date(2026, 11, 20))


# -- warehouse settings -------------------------------------------------------------------------


def test_warehouse_default_duckdb_path_and_timezone(tmp_path) -> None:
    w = warehouse_settings_from_env({"COC_WAREHOUSE": f"{tmp_path}/wh/"})
    assert w.warehouse == f"{tmp_path}/wh/"
    assert w.duckdb_path == f"{tmp_path}/wh/coc.duckdb"
    assert w.timezone == "UTC" and str(w.tz) == "UTC"


def test_warehouse_explicit_duckdb_and_timezone() -> None:
    w = warehouse_settings_from_env(
        {
            "COC_WAREHOUSE": "s3://bucket/coc",
            "COC_DUCKDB": "/data/coc.duckdb",
            "COC_TIMEZONE": "Asia/Shanghai",
        }
    )
    assert w.duckdb_path == "/data/coc.duckdb" and w.tz.key == "Asia/Shanghai"


def test_object_storage_warehouse_needs_coc_duckdb() -> None:
    with pytest.raises(ConfigError, match="COC_DUCKDB"):
        warehouse_settings_from_env({"COC_WAREHOUSE": "s3://bucket/coc"})


def test_missing_warehouse_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="COC_WAREHOUSE"):
        warehouse_settings_from_env({})


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "UTC+8"])
def test_unknown_timezone_is_a_config_error(zone: str) -> None:
    with pytest.raises(ConfigError, match="COC_TIMEZONE"):
        warehouse_settings_from_env({"COC_WAREHOUSE": "/tmp/wh", "COC_TIMEZONE": zone})
