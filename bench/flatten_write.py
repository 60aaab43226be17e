"""4. Flatten + write offline: the product's path against pandas, on the same page bytes.

The day's instance pages are fetched once (by the end-to-end raw fetch, or here if that
measurement did not run) and kept in memory. Then, one after the other per round:

- the product: what the ingestion does per page (the fetching side's ids decode, with
  the client's ``BatchPageIds`` decoder) and per chunk of ``FLUSH_ROWS`` rows (its
  ``InstanceLoader``: Arrow parsing and flattening, ``pages.flatten_pages``, then a
  ``DayWriter`` that stages, compresses and publishes the day's Parquet), all in this one
  thread (the work, not how it is spread over cores);
- pandas, as a data engineer would write it: ``json.loads`` every page,
  ``pd.json_normalize(pages, record_path="execute_instances", meta=...)``, the contract's
  renames, fallbacks and types (nullable integers, UTC millisecond timestamps, the
  ``custom_attributes`` map), then ``to_parquet`` with the contract's Arrow schema and the
  same compression (zstd).

Both outputs are read back once and compared row for row (outside the timing), so the two
paths are known to produce the same table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.core import Row, Scale, Section, Spread, Stopwatch, Target, ratios, scratch_dir
from bench.day import DAY, simulator_process, sized_day
from bench.raw_fetch import day_requests, fetch_pages
from pipelines.coc.models import BatchPageIds, RawPage, envelope_type
from pipelines.coc.settings import DEFAULT_CONCURRENCY
from pipelines.lake.day_writer import COMPRESSION, DayWriter
from pipelines.lake.load import FLUSH_ROWS, InstanceLoader
from pipelines.transform.schemas import EXECUTION_INSTANCES

BatchPages = list[tuple[str, int, bytes]]


class _ThisThread(Executor):
    """An executor that runs each job at once, in the caller's thread."""

    def submit(self, job: Callable[..., None], *args: Any) -> Future[None]:
        future: Future[None] = Future()
        job(*args)
        future.set_result(None)
        return future


def product_path(pages: BatchPages, root: Path) -> tuple[Path, int]:
    """Decode, flatten and write the pages as the product does: (the day's folder, rows)."""
    ids = msgspec.json.Decoder(envelope_type(BatchPageIds))  # as the client decodes
    with DayWriter(root=str(root), day=DAY, row_group_rows=FLUSH_ROWS) as writer:
        loader = InstanceLoader(writer, _ThisThread(), FLUSH_ROWS)
        for n, (execute_uuid, batch_index, body) in enumerate(pages):
            count = len(ids.decode(body).data.execute_instances or [])
            loader.add(
                execute_uuid, batch_index, RawPage(body=body, marker=n, keep=None, count=count)
            )
        loader.finish()
        tables = writer.commit()
    folder = root / "execution_instances" / f"dt={DAY.isoformat()}"
    return folder, tables["execution_instances"].rows


_RENAMES = {
    "id": "instance_id",
    "target_instance.resource_id": "resource_id",
    "target_instance.provider": "provider",
    "target_instance.type": "resource_type",
    "target_instance.agent_sn": "agent_sn",
    "target_instance.agent_status": "agent_status",
    "target_instance.properties.host_name": "host_name",
    "target_instance.properties.fixed_ip": "fixed_ip",
    "target_instance.properties.floating_ip": "floating_ip",
    "target_instance.properties.zone_id": "zone_id",
    "target_instance.properties.application": "application",
    "target_instance.properties.group": "group_name",
}


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df else pd.Series([None] * len(df), index=df.index, dtype=object)


def _attributes(value: Any) -> list[tuple[str, str]] | None:
    if not isinstance(value, list):
        return None
    return [(a["key"], a["value"]) for a in value if a.get("key") is not None]


def pandas_path(pages: BatchPages, path: Path) -> Path:
    """The same table with ``json.loads`` + ``pd.json_normalize`` + ``to_parquet``."""
    docs = []
    for execute_uuid, _batch_index, body in pages:
        data = json.loads(body)["data"]
        data["execute_uuid"] = execute_uuid
        docs.append(data)
    df = pd.json_normalize(
        docs, record_path="execute_instances", meta=["execute_uuid", "batch_index"]
    )
    df = df.rename(columns=_RENAMES)
    df["batch_index"] = df["batch_index"].astype("int32")
    df["created_at"] = pd.to_datetime(df["gmt_created"], unit="ms", utc=True)
    df["finished_at"] = pd.to_datetime(df["gmt_finished"], unit="ms", utc=True)
    df["execute_costs"] = df["execute_costs"].astype("Int64")
    df["duration_ms"] = (df["gmt_finished"] - df["gmt_created"]).astype("Int64")
    for name in ("region_id", "project_id"):
        df[name] = _column(df, f"target_instance.properties.{name}").fillna(
            _column(df, f"target_instance.{name}")
        )
    df["custom_attributes"] = _column(df, "target_instance.custom_attributes").map(_attributes)
    for name in EXECUTION_INSTANCES.names:
        if name not in df:
            df[name] = None
    df[EXECUTION_INSTANCES.names].to_parquet(
        path, engine="pyarrow", schema=EXECUTION_INSTANCES, compression=COMPRESSION, index=False
    )
    return path


def _sorted_table(source: Path) -> pa.Table:
    table = pq.read_table(source, schema=EXECUTION_INSTANCES)
    return table.sort_by([("execute_uuid", "ascending"), ("instance_id", "ascending")])


def same_table(product: Path, pandas: Path) -> bool:
    return _sorted_table(product).equals(_sorted_table(pandas))


def fetch_day_pages(instances: int, root: Path) -> BatchPages:
    day = sized_day(instances)
    with simulator_process(instances, log=root / "simulator.log") as simulator:
        return fetch_pages(
            simulator.url, day_requests(day), concurrency=DEFAULT_CONCURRENCY, keep=True
        ).batch_pages


def measure(scale: Scale, pages: BatchPages | None) -> Section:
    section = Section(name="flatten_write", title="4 flatten + write (offline)")
    with scratch_dir("flatten") as root:
        if pages is None:
            pages = fetch_day_pages(scale.e2e_instances, root)
        rows = 0
        product_s: list[float] = []
        pandas_s: list[float] = []
        identical = None
        for n in range(scale.repeats):
            with Stopwatch() as watch:
                product_out, rows = product_path(pages, root / f"product-{n}")
            product_s.append(watch.seconds)
            with Stopwatch() as watch:
                pandas_out = pandas_path(pages, root / f"pandas-{n}.parquet")
            pandas_s.append(watch.seconds)
            if n == 0:
                identical = same_table(product_out, pandas_out)
    section.detail = {
        "pages": len(pages),
        "page_bytes": sum(len(body) for _, _, body in pages),
        "instances": rows,
        "product_seconds": product_s,
        "pandas_seconds": pandas_s,
        "identical_output": identical,
    }
    for name, values in (("product", product_s), ("pandas json_normalize", pandas_s)):
        section.rows.append(
            Row(
                metric=f"{name}: instances/s",
                spread=Spread.of([rows / s for s in values]),
                unit="/s",
            )
        )
    section.rows.append(
        Row(
            metric="product speed / pandas speed",
            spread=Spread.of(ratios(pandas_s, product_s)),
            unit="×",
            target=Target(">=", 6.0),
            note="outputs identical" if identical else "OUTPUTS DIFFER",
        )
    )
    return section
