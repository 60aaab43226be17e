"""DuckDB's own ``delta_scan`` (DuckDB 1.5 and its ``delta`` extension from PyPI, loaded offline
in a side environment: ``tests/compat``) reads a re-run day exactly once, on a local disk and
on moto's S3 server, where a glob of the same folder reads the old and the new run together.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipelines.lake.day_writer import DayWriter, warehouse_publisher
from pipelines.settings import WarehouseSettings
from tests.compat.envs import HERE, compat_python
from tests.integration.parquet_crash_writer import write_day

DAY = "2026-11-18"

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_delta_scan_sees_each_instance_of_a_rerun_day_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    python = compat_python("duckdb-delta")
    args: list[str] = []
    secret = ""
    if kind == "local":
        wh = WarehouseSettings(warehouse=str(tmp_path / "wh"), duckdb_path=str(tmp_path / "c"))
        uri = f"{wh.warehouse}/execution_instances"
    else:
        s3 = request.getfixturevalue("s3_server")
        wh = WarehouseSettings(
            warehouse=f"s3://{s3.bucket()}/coc",
            duckdb_path=str(tmp_path / "c"),
            object_store=s3.settings(),
        )
        uri = f"{wh.warehouse}/execution_instances"
        args = [s3.endpoint, s3.access_key_id, "us-east-1"]
        secret = s3.secret_access_key
    import datetime as dt

    for tag, rows in (("v1", 300), ("v2", 250)):
        with DayWriter(day=dt.date.fromisoformat(DAY), publisher=warehouse_publisher(wh)) as w:
            write_day(w, tag, rows)
            w.commit()
    done = subprocess.run(
        [str(python), str(HERE / "delta_scan.py"), uri, *args],
        input=secret,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    keys = [tuple(k) for k in seen["delta_scan"]]
    assert len(keys) == len(set(keys)) == 250
    assert {k[0].split("-")[0] for k in keys} == {"v2"}
    assert seen["glob"] == 550  # a reader without the log sees both runs until the vacuum
