"""The raw archive's pure parts: drift found in bodies, the replay key, retention on a real
folder, and the retention setting."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipelines.errors import ConfigError
from pipelines.ingest import apply_archive_retention
from pipelines.lake.raw_archive import (
    ArchiveMissingError,
    drop_expired,
    load_archive,
    replay_key,
    request_key,
)
from pipelines.lake.tables import DataFile, Lake
from pipelines.settings import WarehouseSettings, archive_retention_from_env
from pipelines.transform.drift import MISSING, TYPE_CHANGED, UNEXPECTED, DriftTally
from pipelines.transform.schemas import RAW_RESPONSES
from tests.support.lake import commit_partition
from warehouse.vacuum import vacuum_tables

DAY = dt.date(2026, 11, 25)


def instance(**changes: object) -> dict:
    record: dict = {
        "id": 7,
        "target_instance": {
            "resource_id": "r",
            "provider": "ECS",
            "region_id": None,
            "project_id": None,
            "type": "CLOUD_SERVER",
            "custom_attributes": [{"key": "k", "value": "v"}],
            "agent_sn": "sn",
            "agent_status": "ONLINE",
            "properties": {
                "host_name": "h",
                "fixed_ip": "10.0.0.1",
                "floating_ip": None,
                "region_id": "cn-north-4",
                "zone_id": "cn-north-4a",
                "application": None,
                "group": None,
                "project_id": None,
            },
        },
        "gmt_created": 1,
        "gmt_finished": 2,
        "execute_costs": 1,
        "status": "FINISHED",
        "message": "ok",
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = record
        for key in parents:
            node = node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return record


def page(*instances: dict) -> bytes:
    body = {"data": {"batch_index": 1, "total_instances": 9, "execute_instances": list(instances)}}
    return orjson.dumps(body)


def findings(*bodies: bytes, at: int = 1000) -> dict[tuple[str, str], tuple]:
    tally = DriftTally(DAY)
    for n, body in enumerate(bodies):
        tally.inspect("get_batch", body, at + n)
    return {
        (path, kind): (f.count, f.example, f.expected, f.first_seen_ms)
        for (_, path, kind), f in tally.findings.items()
    }


def test_a_documented_page_has_no_drift() -> None:
    assert findings(page(instance(), instance(id=8, message=None))) == {}


def test_an_unexpected_host_property_is_found_with_its_path_count_and_example() -> None:
    drifted = instance(target_instance__properties__rack="rack-07")
    found = findings(page(drifted, drifted), page(drifted))
    path = "data.execute_instances[].target_instance.properties.rack"
    assert found == {(path, UNEXPECTED): (3, "rack-07", None, 1000)}


def test_a_missing_mapped_field_is_found_but_a_null_is_a_value() -> None:
    found = findings(page(instance(target_instance__agent_sn=...), instance(message=None)))
    path = "data.execute_instances[].target_instance.agent_sn"
    assert found == {(path, MISSING): (1, None, "string", 1000)}


def test_a_number_sent_as_a_string_is_a_changed_type() -> None:
    found = findings(page(instance(execute_costs="311031")))
    path = "data.execute_instances[].execute_costs"
    assert found == {(path, TYPE_CHANGED): (1, "311031", "integer", 1000)}


def test_an_integer_where_a_number_is_documented_is_no_drift() -> None:
    tally = DriftTally(DAY)
    detail = {"data": {"properties": {"execute_param": {"success_rate": 1}}}}
    tally.inspect("get_order", orjson.dumps(detail), 0)
    assert [k for (_, _, k) in tally.findings] == [MISSING] * len(tally.findings)


def test_the_example_of_a_field_named_like_a_secret_is_never_kept() -> None:
    found = findings(page(instance(target_instance__access_token="eyJhbGciOi-secret")))
    ((count, example, _, _),) = found.values()
    assert count == 1 and "eyJ" not in (example or "") and "not kept" in (example or "")


def test_drift_rows_follow_the_table_schema_sorted() -> None:
    tally = DriftTally(DAY)
    tally.inspect("get_batch", page(instance(target_instance__zz=1, execute_costs="x")), 5)
    batch = tally.batch()
    assert batch.column("day").to_pylist() == [DAY, DAY]
    assert batch.column("kind").to_pylist() == [TYPE_CHANGED, UNEXPECTED]


def test_the_replay_key_ignores_the_limit_and_the_order_of_the_query() -> None:
    path = "/v1/job/script/orders/a%2Fb/batches/2"
    asked = request_key(path, [("marker", "10"), ("limit", "20"), ("status", "A B")])
    assert asked == replay_key(path, "limit=50&status=A%20B&marker=10")
    assert asked != replay_key(path, "limit=50&marker=11")


def _archive_day(root: Path, day: dt.date) -> Path:
    """One archived response committed as ``day`` of ``raw_responses``, as a run commits it."""
    folder = root / "raw_responses" / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{day:%Y%m%d}.parquet"
    row = {
        "seq": 0,
        "received_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "endpoint": "list",
        "method": "GET",
        "path": "/v1/job/script/orders",
        "query": "marker=0",
        "marker": 0,
        "execute_uuid": None,
        "batch_index": None,
        "status_code": 200,
        "body": b"{}",
    }
    pq.write_table(pa.Table.from_pylist([row], schema=RAW_RESPONSES), path)
    Lake(str(root)).commit_day(
        "raw_responses",
        RAW_RESPONSES,
        day,
        [DataFile(f"dt={day.isoformat()}/{path.name}", path.stat().st_size, 1, 0)],
        run_id=path.stem,
    )
    return path


def test_retention_deletes_only_archive_days_older_than_the_setting(tmp_path: Path) -> None:
    days = [dt.date(2026, 11, 1), dt.date(2026, 11, 20), dt.date(2026, 11, 25)]
    files = [_archive_day(tmp_path, d) for d in days]
    commit_partition(tmp_path, "script_orders", dt.date(2026, 11, 1), [])
    lake = Lake(str(tmp_path))
    before = lake.snapshot("raw_responses").version
    assert drop_expired(lake, keep_days=None, today=DAY, run_id="r") == []
    assert drop_expired(lake, keep_days=5, today=DAY, run_id="r") == [dt.date(2026, 11, 1)]
    after = lake.snapshot("raw_responses")
    assert sorted(after.files) == days[1:]  # gone from the log, in one commit
    assert after.version == (before or 0) + 1
    assert lake.snapshot("script_orders").files.keys() == {dt.date(2026, 11, 1)}
    assert drop_expired(lake, keep_days=5, today=DAY, run_id="r") == []  # nothing more
    assert files[0].exists()  # the vacuum deletes the file, not the retention
    removed = vacuum_tables(lake, {"raw_responses": set()}, retention_h=0)
    assert [Path(p).name for p in removed["raw_responses"]] == [files[0].name]
    assert not files[0].exists() and files[1].exists() and files[2].exists()
    with pytest.raises(ArchiveMissingError, match="2026-11-01"):
        load_archive(lake, pafs.LocalFileSystem(), str(tmp_path), dt.date(2026, 11, 1))
    assert len(load_archive(lake, pafs.LocalFileSystem(), str(tmp_path), days[1])) == 1


def test_retention_runs_from_the_warehouse_settings(tmp_path: Path) -> None:
    _archive_day(tmp_path, dt.date(2020, 1, 1))
    lake = Lake(str(tmp_path))
    wh = WarehouseSettings(warehouse=str(tmp_path), duckdb_path=str(tmp_path / "c.duckdb"))
    assert apply_archive_retention(wh) == []
    assert list(lake.snapshot("raw_responses").files) == [dt.date(2020, 1, 1)]
    kept = WarehouseSettings(
        warehouse=str(tmp_path), duckdb_path=str(tmp_path / "c.duckdb"), archive_retention_days=30
    )
    assert apply_archive_retention(kept) == [dt.date(2020, 1, 1)]
    assert list(lake.snapshot("raw_responses").files) == []


def test_the_retention_setting() -> None:
    assert archive_retention_from_env({}) is None
    assert archive_retention_from_env({"COC_ARCHIVE_RETENTION_DAYS": "0"}) is None
    assert archive_retention_from_env({"COC_ARCHIVE_RETENTION_DAYS": "90"}) == 90
    with pytest.raises(ConfigError, match="COC_ARCHIVE_RETENTION_DAYS"):
        archive_retention_from_env({"COC_ARCHIVE_RETENTION_DAYS": "a month"})
