"""Object-storage settings (addressing style, endpoint rules, hidden secrets) and the rule
that decides when a superseded object may be deleted."""

from __future__ import annotations

import datetime as dt

import pytest
from pipelines.day_manifests import DayManifest, ViewsPublished, deletable, run_of

from pipelines.coc.errors import ConfigError
from pipelines.objectstore import S3Location
from pipelines.settings import (
    DEFAULT_RETIRE_GRACE_S,
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
        ({"COC_S3_RETIRE_GRACE_S": "soon"}, "COC_S3_RETIRE_GRACE_S"),
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
    assert wh.object_store.retire_grace_s == DEFAULT_RETIRE_GRACE_S


def test_a_local_warehouse_has_no_object_store() -> None:
    assert warehouse_settings_from_env({"COC_WAREHOUSE": "/tmp/wh"}).object_store is None


def test_s3_locations() -> None:
    assert S3Location.parse("s3://bucket/a/b/").path == "bucket/a/b"
    assert S3Location.parse("s3://bucket").path == "bucket"
    with pytest.raises(ConfigError, match="COC_WAREHOUSE"):
        S3Location.parse("s3:///nothing")


# -- when a superseded object may go -----------------------------------------------------------


def test_run_of_reads_the_run_from_the_object_name() -> None:
    assert run_of(OLD) == OLD_RUN
    assert run_of(f"execution_instances/dt={DAY}/stray.parquet") is None


def views(*published: tuple[float, str]) -> list[ViewsPublished]:
    return [ViewsPublished(at, {DAY.isoformat(): run}) for at, run in published]


def test_nothing_goes_within_the_grace_period_of_its_retirement() -> None:
    assert not deletable(DAY, OLD, 1000.0, [], now=1059.0, grace_s=60)
    assert deletable(DAY, OLD, 1000.0, [], now=1060.0, grace_s=60)  # no view ever named it


def test_an_object_the_published_file_names_stays() -> None:
    published = views((900.0, OLD_RUN))
    assert not deletable(DAY, OLD, 1000.0, published, now=10**9, grace_s=60)


def test_an_object_goes_a_grace_period_after_the_file_naming_it_was_replaced() -> None:
    published = views((900.0, OLD_RUN), (1100.0, NEW_RUN))
    assert not deletable(DAY, OLD, 1000.0, published, now=1159.0, grace_s=60)
    assert deletable(DAY, OLD, 1000.0, published, now=1160.0, grace_s=60)
    # named again by a later file (a view of another warehouse copy): the last one counts
    again = [*published, *views((1200.0, OLD_RUN), (1300.0, NEW_RUN))]
    assert not deletable(DAY, OLD, 1000.0, again, now=1359.0, grace_s=60)
    assert deletable(DAY, OLD, 1000.0, again, now=1360.0, grace_s=60)


def test_a_stray_object_no_view_can_name_goes_after_the_grace_period() -> None:
    stray = f"execution_instances/dt={DAY}/part-{NEW_RUN}-00000.parquet"
    published = views((900.0, OLD_RUN))
    assert deletable(DAY, stray, 1000.0, published, now=1060.0, grace_s=60)
    other_day = [ViewsPublished(900.0, {"2026-11-24": NEW_RUN})]
    assert deletable(DAY, stray, 1000.0, other_day, now=1060.0, grace_s=60)


def test_a_manifest_round_trips_and_a_broken_one_is_named() -> None:
    manifest = DayManifest(
        day=DAY,
        run_id=NEW_RUN,
        published_at=1.5,
        tables={"execution_instances": [OLD.replace(OLD_RUN, NEW_RUN)]},
        retired={OLD: 1.0},
    )
    assert DayManifest.from_json(manifest.to_json(), "m") == manifest
    with pytest.raises(ValueError, match=r"_manifests/dt=2026-11-25\.json is not a day manifest"):
        DayManifest.from_json(b'{"day": "2026-11-25"}', "_manifests/dt=2026-11-25.json")


def test_views_json_forgets_publications_replaced_longer_than_the_grace_ago(tmp_path) -> None:
    import pyarrow.fs as pafs
    from pipelines.day_manifests import read_views, record_views

    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    (tmp_path / "wh" / "_manifests").mkdir(parents=True)
    for at, run in ((100.0, OLD_RUN), (200.0, OLD_RUN), (1000.0, NEW_RUN)):
        record_views(fs, "wh", ViewsPublished(at, {DAY.isoformat(): run}), grace_s=500)
    # the one at 100 was replaced at 200, 800 s before the last: its readers are done
    assert [v.published_at for v in read_views(fs, "wh")] == [200.0, 1000.0]
    # so the objects of OLD_RUN wait for the file at 1000 to be 500 s old
    assert not deletable(DAY, OLD, 150.0, read_views(fs, "wh"), now=1499.0, grace_s=500)
    assert deletable(DAY, OLD, 150.0, read_views(fs, "wh"), now=1500.0, grace_s=500)


# -- the manifest publisher's failure paths (a local disk seen as object storage) --------------


class _FailingManifest:
    """A local disk through an fsspec handler (no rename, like S3) whose manifest PUT fails,
    before the object landed or after (the answer lost)."""

    def __init__(self, root, *, landed: bool) -> None:
        import io

        import fsspec
        import pyarrow as pa
        import pyarrow.fs as pafs

        outer = self

        class LandsThenFails(io.BytesIO):
            def __init__(self, path: str) -> None:
                super().__init__()
                self.path = path

            def close(self) -> None:
                if not self.closed:
                    with open(self.path, "wb") as f:
                        f.write(self.getvalue())
                    super().close()
                    raise OSError("timed out waiting for the answer")

        class Handler(pafs.FSSpecHandler):
            def open_output_stream(self, path: str, metadata: object) -> object:
                if outer.armed and "/_manifests/dt=" in path:
                    if landed:
                        return pa.PythonFile(LandsThenFails(path), mode="w")
                    raise OSError("503 Slow Down")
                return super().open_output_stream(path, metadata)

        self.armed = False
        self.fs = pafs.PyFileSystem(Handler(fsspec.filesystem("file", auto_mkdir=True)))
        self.root = str(root)


@pytest.mark.parametrize("landed", [False, True])
def test_a_failed_manifest_put_publishes_nothing_or_everything(tmp_path, landed: bool) -> None:
    import pyarrow as pa
    from pipelines.day_manifests import ManifestPublish, read_manifest

    from pipelines.parquet import DayWriter
    from pipelines.schemas import SCRIPT_ORDERS
    from pipelines.write_errors import WriteError

    disk = _FailingManifest(tmp_path / "wh", landed=landed)
    publisher = ManifestPublish(disk.fs, disk.root, retire_grace_s=0)

    def run(tag: str) -> str:
        rows = pa.RecordBatch.from_pylist([{"execute_uuid": tag}], schema=SCRIPT_ORDERS)
        with DayWriter(day=DAY, publisher=publisher, lock_dir=str(tmp_path / "locks")) as w:
            w.write("script_orders", rows)
            w.commit()
        return w.run_id

    first = run("v1")
    disk.armed = True
    if landed:  # the PUT went through: the day is the new run's, whole
        second = run("v2")
        manifest = read_manifest(disk.fs, disk.root, DAY)
        assert manifest is not None and manifest.run_id == second
        return
    with pytest.raises(WriteError, match="manifest failed, nothing published"):
        run("v2")
    manifest = read_manifest(disk.fs, disk.root, DAY)
    assert manifest is not None and manifest.run_id == first
    published = sorted(p.name for p in (tmp_path / "wh").rglob("part-*.parquet"))
    assert published == sorted(f"part-{first}-00000.parquet" for _ in range(3))
