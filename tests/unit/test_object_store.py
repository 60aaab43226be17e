"""Object-storage settings (addressing style, endpoint rules, hidden secrets, how commits are
serialised, timeouts) and the run a data file's name carries."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.errors import ConfigError
from pipelines.lake.objectstore import S3Location
from pipelines.lake.tables import run_of, storage_options
from pipelines.settings import (
    DEFAULT_MAX_SHRINK,
    DEFAULT_VACUUM_RETENTION_H,
    ObjectStoreSettings,
    warehouse_settings_from_env,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DAY = dt.date(2026, 11, 25)
OLD_RUN, NEW_RUN = "20261125T020000000000Z-aaaaaaaa", "20261126T020000000000Z-bbbbbbbb"
OLD = f"execution_instances/dt={DAY}/part-{OLD_RUN}-00000.parquet"


@pytest.mark.parametrize(
    ("endpoint", "style", "virtual"),
    [
        ("http://127.0.0.1:9000", None, False),
        ("http://localhost:9000", None, False),
        ("http://[::1]:9000", None, False),
        ("https://10.1.2.3", None, False),
        ("https://obs.cn-north-4.myhuaweicloud.com", None, True),
        ("https://obs.cn-north-4.myhuaweicloud.com", "path", False),
        ("http://127.0.0.1:9000", "vhost", True),
        (None, None, True),
    ],
)
def test_addressing_is_path_style_for_ip_and_localhost_endpoints(
    endpoint: str | None, style: str | None, virtual: bool
) -> None:
    env = {"COC_WAREHOUSE": "s3://b/p", "COC_DUCKDB": "/tmp/c.duckdb"}
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    if style:
        env["COC_S3_URL_STYLE"] = style.upper()
    settings = warehouse_settings_from_env(env).object_store
    assert settings is not None and settings.virtual_hosted is virtual


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AWS_ENDPOINT_URL": "http://obs.example.com"}, "AWS_ENDPOINT_URL"),
        ({"AWS_ENDPOINT_URL": "ftp://127.0.0.1"}, "AWS_ENDPOINT_URL"),
        ({"AWS_ENDPOINT_URL": f"https://ak:{SECRET}@obs.example.com"}, "AWS_ENDPOINT_URL"),
        ({"COC_S3_URL_STYLE": "virtual"}, "COC_S3_URL_STYLE"),
        ({"AWS_ACCESS_KEY_ID": "AK"}, "AWS_SECRET_ACCESS_KEY"),
        ({"COC_WAREHOUSE": "gs://bucket/coc"}, "COC_WAREHOUSE"),
        ({"COC_WAREHOUSE": "s3:///coc"}, "COC_WAREHOUSE"),
        ({"COC_DUCKDB": "s3://bucket/coc.duckdb"}, "COC_DUCKDB"),
    ],
)
def test_bad_object_storage_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    base = {"COC_WAREHOUSE": "s3://bucket/coc", "COC_DUCKDB": "/tmp/c.duckdb"}
    with pytest.raises(ConfigError, match=variable) as info:
        warehouse_settings_from_env(base | env)
    assert SECRET not in str(info.value)


def test_the_secret_key_is_never_in_a_repr() -> None:
    settings = ObjectStoreSettings(
        access_key_id="AKID", secret_access_key=SECRET, session_token="tok-" + SECRET
    )
    shown = repr(settings) + str(settings)
    assert SECRET not in shown and "AKID" in shown and "<hidden>" in shown
    wh = warehouse_settings_from_env(
        {
            "COC_WAREHOUSE": "s3://b/p",
            "COC_DUCKDB": "/tmp/c.duckdb",
            "AWS_ACCESS_KEY_ID": "AKID",
            "AWS_SECRET_ACCESS_KEY": SECRET,
        }
    )
    assert SECRET not in repr(wh)
    assert wh.object_store is not None and wh.object_store.secret_access_key == SECRET
    assert wh.object_store.conditional_put
    assert wh.vacuum_retention_h == DEFAULT_VACUUM_RETENTION_H
    assert wh.max_shrink == DEFAULT_MAX_SHRINK and not wh.allow_shrink


def test_a_local_warehouse_has_no_object_store() -> None:
    assert warehouse_settings_from_env({"COC_WAREHOUSE": "/tmp/wh"}).object_store is None


def test_s3_locations() -> None:
    assert S3Location.parse("s3://bucket/a/b/").path == "bucket/a/b"
    assert S3Location.parse("s3://bucket").path == "bucket"
    with pytest.raises(ConfigError, match="COC_WAREHOUSE"):
        S3Location.parse("s3:///nothing")


# -- Delta's storage options, and the run in a file name ---------------------------------------


def test_run_of_reads_the_run_from_the_object_name() -> None:
    assert run_of(OLD) == OLD_RUN
    assert run_of(f"execution_instances/dt={DAY}/stray.parquet") is None


def test_commits_are_serialised_by_the_store_or_by_our_lock() -> None:
    settings = ObjectStoreSettings(
        access_key_id="AKID", secret_access_key=SECRET, endpoint_url="http://127.0.0.1:9000"
    )
    options = storage_options(settings)
    assert options is not None and options["AWS_CONDITIONAL_PUT"] == "etag"
    assert "AWS_S3_ALLOW_UNSAFE_RENAME" not in options
    assert options["AWS_ALLOW_HTTP"] == "true"  # loopback only: the settings refuse others
    assert options["timeout"] and options["connect_timeout"] and options["max_retries"]
    no_put = storage_options(
        warehouse_settings_from_env(
            {
                "COC_WAREHOUSE": "s3://b/p",
                "COC_DUCKDB": "/tmp/c.duckdb",
                "COC_S3_CONDITIONAL_PUT": "none",
            }
        ).object_store
    )
    assert no_put is not None and "AWS_CONDITIONAL_PUT" not in no_put
    assert no_put["AWS_S3_ALLOW_UNSAFE_RENAME"] == "true"
    assert storage_options(None) is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"COC_S3_CONDITIONAL_PUT": "maybe"}, "COC_S3_CONDITIONAL_PUT"),
        ({"COC_MAX_SHRINK": "1.5"}, "COC_MAX_SHRINK"),
        ({"COC_ALLOW_SHRINK": "perhaps"}, "COC_ALLOW_SHRINK"),
        ({"COC_VACUUM_RETENTION_HOURS": "0.1"}, "COC_VACUUM_RETENTION_HOURS"),
    ],
)
def test_bad_lake_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        warehouse_settings_from_env({"COC_WAREHOUSE": "s3://b/p", "COC_DUCKDB": "/c", **env})
