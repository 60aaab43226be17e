"""Rows of large values are held by bytes as well as by count: the loader's chunks of page
bodies (``load.FLUSH_BYTES``) and the writer's pending rows (``parquet.ROW_GROUP_BYTES``)
stay bounded however few rows a 40 MB message leaves in them. Real Arrow, real Parquet files
in ``tmp_path``, read back."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.coc.models import RawPage
from pipelines.lake.day_writer import DayWriter
from pipelines.lake.load import InstanceLoader
from pipelines.transform.schemas import EXECUTION_INSTANCES

DAY = dt.date(2026, 11, 25)
BIG = 600_000  # bytes of one message


def _rows(start: int, n: int, message: str) -> pa.RecordBatch:
    columns: dict[str, list] = {f.name: [None] * n for f in EXECUTION_INSTANCES}
    columns |= {
        "execute_uuid": ["SCT-big"] * n,
        "batch_index": [1] * n,
        "instance_id": list(range(start, start + n)),
        "status": ["ABNORMAL"] * n,
        "message": [message] * n,
    }
    return pa.RecordBatch.from_pydict(columns, schema=EXECUTION_INSTANCES)


def _body(instance_id: int, message: str) -> bytes:
    item = (
        f'{{"id":{instance_id},"target_instance":null,"gmt_created":null,'
        f'"gmt_finished":null,"execute_costs":null,"status":"ABNORMAL","message":"{message}"}}'
    )
    return (
        f'{{"data":{{"batch_index":1,"total_instances":9,"execute_instances":[{item}]}}}}'.encode()
    )


def test_the_writer_makes_a_row_group_once_its_pending_rows_pass_the_byte_bound(
    tmp_path: Path,
) -> None:
    writer = DayWriter(root=str(tmp_path), day=DAY, row_group_rows=10_000, row_group_bytes=2**20)
    with writer:
        for n in range(6):  # six rows of 600 kB: far under 10,000 rows, over 1 MiB pending
            writer.write("execution_instances", _rows(n, 1, "m" * BIG))
            pending = writer._files["execution_instances"].pending_bytes
            assert pending < 2**20 + 2 * BIG
        writer.commit()
    (path,) = (tmp_path / "execution_instances").rglob("*.parquet")
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_rows == 6
    assert metadata.num_row_groups == 3  # two rows (1.2 MB) a group, not one group of six
    assert pq.read_table(path)["message"].to_pylist() == ["m" * BIG] * 6


def test_the_loader_hands_over_page_bodies_once_they_pass_the_byte_bound(tmp_path: Path) -> None:
    held: list[int] = []
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        DayWriter(root=str(tmp_path), day=DAY) as writer,
    ):
        loader = InstanceLoader(writer, pool, flush_rows=10_000, flush_bytes=2**20)
        for n in range(8):
            body = _body(n + 1, "m" * BIG)
            loader.add("SCT-big", 1, RawPage(body=body, marker=n, keep=None, count=1))
            held.append(sum(len(p.page.body) for p in loader._pages))
        loader.finish()
        writer.commit()
    assert max(held) < 2**20  # a chunk goes to the thread as soon as it passes 1 MiB
    (path,) = (tmp_path / "execution_instances").rglob("*.parquet")
    assert pq.read_table(path)["instance_id"].to_pylist() == list(range(1, 9))
