"""Settings from ``COC_*`` values: what is required, what is refused, what is hidden."""

from __future__ import annotations

import os

import pytest

from pipelines.coc.errors import ConfigError
from pipelines.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_RPS,
    ClientSettings,
    client_settings_from_env,
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
        "COC_TOKEN": TOKEN,
        "COC_PROJECT_ID": "proj-9",
        "COC_CA_BUNDLE": "/etc/ssl/private-ca.pem",
    }
    s = client_settings_from_env(env)
    assert (s.ak, s.sk, s.token, s.project_id) == ("AK1", SK, TOKEN, "proj-9")
    assert s.ca_bundle == "/etc/ssl/private-ca.pem"
    assert s.auth_kind == "aksk"
    shown = repr(s) + str(s) + f"{s!r}"
    assert SK not in shown and TOKEN not in shown
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
