"""An ``s3://`` run checks the object store once, in its pre-flight (``warehouse/preflight.py``),
before the COC API is asked anything: ``coc-etl ingest`` of one day against the simulator and
moto's S3 server, with every ``check_access`` counted."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

import pytest

import pipelines.ingest
import pipelines.lake.objectstore
import warehouse.preflight
from coc_etl.cli import ingest
from coc_simulator.data import SimConfig
from coc_simulator.server import SimulatorServer
from tests.support.s3server import S3Server

AK = "ONCEAK"
SK = "once-test-coc-secret-0123456789abcdef"
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 11, 18)


def test_an_s3_run_checks_the_object_store_once(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real = pipelines.lake.objectstore.check_access

    def counted(uri: str, settings: object) -> None:
        checked.append(uri)
        real(uri, settings)  # type: ignore[arg-type]

    # every name the check is reachable under, in the modules of a run
    for module in (pipelines.lake.objectstore, warehouse.preflight, pipelines.ingest):
        monkeypatch.setattr(module, "check_access", counted, raising=False)
    for name in list(os.environ):
        if name.startswith(("COC_", "AWS_")):
            monkeypatch.delenv(name)
    with SimulatorServer(SimConfig(seed=5, days=3, now=NOW), ak=AK, sk=SK) as sim:
        uri = f"s3://{s3_server.bucket()}/coc"
        env = s3_server.env(
            uri,
            COC_ENDPOINT=sim.url,
            COC_AK=AK,
            COC_SK=SK,
            COC_MAX_RPS="0",
            COC_DUCKDB=str(tmp_path / "coc.duckdb"),
        )
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        args = argparse.Namespace(day=DAY, to=None, allow_shrink=False, published=[])
        assert ingest.run(args) == 0
    assert args.published == [DAY]
    assert checked == [uri]
