"""The warehouse's Delta tables, on a local disk and on moto's S3 server, with real processes.

- Engines other than the product (deltalake's reader, Polars) and ``coc.duckdb`` see each
  instance of a re-run day exactly once.
- The mixed-snapshot probe: a reader opening a fresh connection to ``coc.duckdb`` for every
  query, while runs in other processes replace a day with other data and rebuild, never sees
  the tables of two runs side by side, nor a missing file.
- Runs of different days, each its own process, commit to the same tables at once: none lost.
- The vacuum never removes a file that a published ``coc.duckdb`` names.
- ``coc-etl report --as-of`` answers as the warehouse was, after a re-run changed it.
- A day restored under the same file names with other content is rebuilt.
- Migration: a warehouse of plain Hive folders (local) or of day manifests (s3) becomes
  Delta in place; its tables and marts equal those of the same days published as Delta.
(A ``kill -9`` at each step of a commit: ``test_parquet_crash.py``.)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.lake.day_writer import DayWriter, warehouse_publisher
from pipelines.lake.objectstore import S3Location, s3_filesystem
from pipelines.lake.tables import Lake, storage_options
from pipelines.settings import WarehouseSettings, warehouse_settings_from_env
from pipelines.transform.schemas import TABLES
from tests.integration.parquet_crash_writer import write_day
from tests.support.lake import commit_partition
from tests.support.views import view_rows
from warehouse.build import build_warehouse, connect

REPO = Path(__file__).parents[2]
WRITER = Path(__file__).with_name("lake_writer.py")
COC_ETL = str(Path(sys.executable).with_name("coc-etl"))
DAY = dt.date(2026, 11, 18)


@dataclass
class Store:
    kind: str
    env: dict[str, str]
    wh: WarehouseSettings

    def lake(self) -> Lake:
        if self.wh.object_store is None:
            return Lake(self.wh.warehouse)
        return Lake(self.wh.warehouse, options=storage_options(self.wh.object_store))

    def build(self, **kwargs: object) -> str:
        return build_warehouse(
            warehouse=self.wh.warehouse,
            duckdb_path=self.wh.duckdb_path,
            object_store=self.wh.object_store,
            **kwargs,  # type: ignore[arg-type]
        ).duckdb_path

    def connect(self, path: str | None = None) -> duckdb.DuckDBPyConnection:
        return connect(path or self.wh.duckdb_path, object_store=self.wh.object_store)

    def publish(self, tag: str, rows: int, day: dt.date = DAY) -> None:
        with DayWriter(day=day, publisher=warehouse_publisher(self.wh)) as w:
            write_day(w, tag, rows)
            w.commit()

    def process(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(WRITER), *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COC_"))}
    env["PYTHONPATH"] = str(REPO)
    if request.param == "local":
        env |= {"COC_WAREHOUSE": str(tmp_path / "wh")}
    else:
        s3 = request.getfixturevalue("s3_server")
        env |= s3.env(f"s3://{s3.bucket()}/coc")
    env["COC_DUCKDB"] = str(tmp_path / "coc.duckdb")
    yield Store(request.param, env, warehouse_settings_from_env(env))


def tags(store: Store, path: str | None = None) -> dict[str, set[str]]:
    """The run tags each table of ``coc.duckdb`` shows for the day (a fresh connection)."""
    con = store.connect(path)
    try:
        sql = {
            "execution_instances": "SELECT DISTINCT split_part(execute_uuid, '-', 1)",
            "script_orders": "SELECT DISTINCT order_name",
            "order_batches": "SELECT DISTINCT rotation_strategy",
        }
        return {
            t: {r[0] for r in con.execute(f"{q} FROM {t} WHERE dt = ?", [DAY]).fetchall()}
            for t, q in sql.items()
        }
    finally:
        con.close()


def instance_keys_elsewhere(store: Store) -> dict[str, list[tuple]]:
    """The day's instance keys as deltalake's reader and Polars see the table."""
    import polars as pl
    from deltalake import DeltaTable

    uri = f"{store.lake().root}/execution_instances"
    options = storage_options(store.wh.object_store)
    data = DeltaTable(uri, storage_options=options).to_pyarrow_table(
        columns=["execute_uuid", "batch_index", "instance_id"]
    )
    aws = {k: v for k, v in (options or {}).items() if k.startswith("AWS_")}
    polars = pl.read_delta(uri, storage_options=aws or None).select(
        ["execute_uuid", "batch_index", "instance_id"]
    )
    return {
        "deltalake": sorted(zip(*(c.to_pylist() for c in data.columns), strict=True)),
        "polars": sorted(polars.iter_rows()),
    }


def test_every_reader_sees_each_instance_of_a_rerun_day_once(store: Store) -> None:
    store.publish("v1", 300)
    store.publish("v2", 250)
    path = store.build()
    for reader, keys in instance_keys_elsewhere(store).items():
        assert len(keys) == len(set(keys)) == 250, reader
        assert {k[0].split("-")[0] for k in keys} == {"v2"}, reader
    assert tags(store, path) == {t: {"v2"} for t in TABLES}
    con = store.connect(path)
    try:
        assert con.execute("SELECT count(*) FROM execution_instances").fetchone() == (250,)
    finally:
        con.close()


@pytest.mark.slow
def test_a_reader_with_a_fresh_connection_per_query_never_sees_two_runs_or_a_missing_file(
    store: Store,
) -> None:
    store.publish("base", 300)
    store.build()
    seen: list[dict[str, set[str]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    elsewhere: list[tuple[int, frozenset[str]]] = []

    def probe() -> None:
        while not stop.is_set():
            try:
                seen.append(tags(store))
                # and an engine reading the table through its log, polling as well
                keys = instance_keys_elsewhere(store)["deltalake"]
                elsewhere.append((len(keys), frozenset(k[0].split("-")[0] for k in keys)))
            except BaseException as exc:  # reported by the test
                errors.append(exc)
                return

    reader = threading.Thread(target=probe)
    reader.start()
    try:  # two processes replace the day with their own data, in turn, and build each time
        writers = [store.process(DAY.isoformat(), tag, "300", "3", "--build") for tag in "ab"]
        for proc in writers:
            assert proc.wait(timeout=240) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        stop.set()
        reader.join()
        for proc in writers:
            if proc.stderr:
                proc.stderr.close()
    assert not errors, errors
    assert len(seen) > 10
    mixed = [
        s
        for s in seen
        if len({frozenset(v) for v in s.values()}) != 1 or len(s["script_orders"]) != 1
    ]
    assert mixed == []  # every query: the three tables of one run, and one run only
    assert len({next(iter(s["script_orders"])) for s in seen}) > 2  # runs did replace the day
    assert all(n in (300, 200) and len(t) == 1 for n, t in elsewhere), set(elsewhere)


@pytest.mark.slow
def test_runs_of_different_days_commit_to_the_same_tables_at_once(store: Store) -> None:
    days = [DAY - dt.timedelta(days=n) for n in range(4)]
    procs = [store.process(d.isoformat(), f"d{n}", "200") for n, d in enumerate(days)]
    for proc in procs:
        assert proc.wait(timeout=240) == 0, proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    for table in TABLES:
        assert sorted(store.lake().snapshot(table).files) == sorted(days), table
    con = store.connect(store.build())
    try:
        rows = con.execute("SELECT dt, count(*) FROM execution_instances GROUP BY dt").fetchall()
    finally:
        con.close()
    assert sorted(rows) == sorted((d, 200) for d in days)


def test_the_vacuum_never_removes_a_file_a_published_coc_duckdb_names(
    store: Store, tmp_path: Path
) -> None:
    store.publish("v1", 300)
    store.build(vacuum_retention_h=0)
    held = tmp_path / "held.duckdb"  # a BI tool's copy, or a reader of the replaced file
    held.write_bytes(Path(store.wh.duckdb_path).read_bytes())
    store.publish("v2", 250)
    store.build(vacuum_retention_h=0)  # past the retention; the replaced file named v1
    assert tags(store, str(held)) == {t: {"v1"} for t in TABLES}
    store.publish("v3", 250)
    store.build(vacuum_retention_h=0)
    assert tags(store) == {t: {"v3"} for t in TABLES}
    # v1 is named by no published file any more: gone; v2 (the replaced file's) stays
    for table in TABLES:
        names = {Path(p).name for p in _data_files(store, table)}
        assert all(run_tag(store, table, n) in ("v2", "v3") for n in names), (table, names)


def run_tag(store: Store, table: str, name: str) -> str:
    """The tag written in a data file of the day (its first ticket's)."""
    path = f"{table}/dt={DAY}/{name}"
    if store.wh.object_store is None:
        data = pq.read_table(f"{store.wh.warehouse}/{path}")
    else:
        where = S3Location.parse(store.wh.warehouse)
        data = pq.read_table(
            f"{where.path}/{path}", filesystem=s3_filesystem(store.wh.object_store)
        )
    column = {"execution_instances": "execute_uuid", "script_orders": "order_name"}.get(
        table, "rotation_strategy"
    )
    return str(data.column(column)[0]).split("-")[0]


def _data_files(store: Store, table: str) -> list[str]:
    fs, base = (
        (s3_filesystem(store.wh.object_store), S3Location.parse(store.wh.warehouse).path)
        if store.wh.object_store
        else (None, store.wh.warehouse)
    )
    if fs is None:
        return [str(p) for p in Path(base, table, f"dt={DAY}").glob("*.parquet")]
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(f"{base}/{table}/dt={DAY}"))
    return [i.path for i in infos if i.path.endswith(".parquet")]


@pytest.mark.slow
def test_report_as_of_answers_as_the_warehouse_was_before_a_rerun(store: Store) -> None:
    store.publish("v1", 300)
    store.build()

    def report(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COC_ETL, "report", "--days", "3650", *args],
            env=store.env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )

    yesterday = report()
    assert yesterday.returncode == 0, yesterday.stderr
    assert "300" in yesterday.stdout
    moment = dt.datetime.now(dt.UTC).isoformat()
    time.sleep(1.1)  # an object store dates a commit to the second (S3's Last-Modified)
    store.publish("v2", 250)
    store.build()
    today = report()
    assert today.returncode == 0 and today.stdout != yesterday.stdout
    then = report("--as-of", moment)
    assert then.returncode == 0, then.stderr
    assert then.stdout == yesterday.stdout
    before_any = report("--as-of", "2024-01-01T00:00:00Z")
    assert before_any.returncode == 0, before_any.stderr
    assert "300" not in before_any.stdout and "250" not in before_any.stdout


def test_a_day_restored_under_the_same_names_with_other_content_is_rebuilt(
    tmp_path: Path,
) -> None:
    root = tmp_path / "wh"
    rows = [
        {"execute_uuid": "t", "batch_index": 1, "instance_id": i, "status": "FINISHED"}
        for i in range(5)
    ]
    commit_partition(root, "execution_instances", DAY, rows, "part-0")
    path = str(tmp_path / "coc.duckdb")
    build_warehouse(warehouse=str(root), duckdb_path=path)
    time.sleep(0.01)  # a restore writes the file again, later
    commit_partition(root, "execution_instances", DAY, rows[:2], "part-0")  # same name
    again = build_warehouse(warehouse=str(root), duckdb_path=path)
    assert not again.full and again.changed_days == (DAY,)
    full = build_warehouse(warehouse=str(root), duckdb_path=str(tmp_path / "full.duckdb"))
    assert again.mart_rows == full.mart_rows
    for built in (path, full.duckdb_path):
        con = duckdb.connect(built, read_only=True)
        try:
            assert con.execute("SELECT sum(instances) FROM instances_daily").fetchone() == (2,)
        finally:
            con.close()


def _old_layout(store: Store, days: dict[dt.date, list[str]]) -> None:
    """Write ``days`` (tags of the runs, the last one current) as the product did before its
    tables were Delta tables: locally, only the current run's files in each day's folder; on
    s3, every run's objects and a manifest per day naming the current ones."""
    import pyarrow.fs as pafs

    from pipelines.lake.day_writer import new_run_id
    from tests.integration.parquet_crash_writer import instances

    if store.wh.object_store is None:
        fs, base = pafs.LocalFileSystem(), store.wh.warehouse
    else:
        fs, base = s3_filesystem(store.wh.object_store), S3Location.parse(store.wh.warehouse).path
    for day, runs in days.items():
        named: dict[str, list[str]] = {}
        for n, tag in enumerate(runs):
            if store.wh.object_store is None and n < len(runs) - 1:
                continue  # a local folder swap left only the last run's files
            run = new_run_id()
            data = {
                "execution_instances": instances(150, start=0, tag=tag),
                "script_orders": _one(tag, "script_orders"),
                "order_batches": _one(tag, "order_batches"),
            }
            for table, batch in data.items():
                relative = f"{table}/dt={day}/part-{run}-00000.parquet"
                if store.wh.object_store is None:
                    fs.create_dir(f"{base}/{table}/dt={day}", recursive=True)
                with fs.open_output_stream(f"{base}/{relative}") as out:
                    pq.write_table(_table(batch), out)
                named[table] = [relative]
        if store.wh.object_store is not None:
            body = {
                "format": 1,
                "day": str(day),
                "run_id": "x",
                "published_at": 0.0,
                "tables": named,
                "retired": [],
            }
            with fs.open_output_stream(f"{base}/_manifests/dt={day}.json") as out:
                out.write(json.dumps(body).encode())


def _one(tag: str, table: str):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    row = {"execute_uuid": f"{tag}-0"}
    row |= (
        {"order_name": tag}
        if table == "script_orders"
        else {"batch_index": 0, "rotation_strategy": tag}
    )
    return pa.RecordBatch.from_pylist([row], schema=TABLES[table])


def _table(batch):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.Table.from_batches([batch])


def every_view(store: Store, path: str) -> dict[str, list]:
    con = store.connect(path)
    try:
        return view_rows(con, leave_out=("execute_uuid",))
    finally:
        con.close()


@pytest.mark.slow
def test_an_old_warehouse_becomes_delta_in_place_with_equal_tables_and_marts(
    store: Store, tmp_path: Path
) -> None:
    days = {DAY: ["old", "cur"], DAY - dt.timedelta(days=1): ["one"]}
    _old_layout(store, days)
    migrated = subprocess.run(
        [COC_ETL, "migrate"], env=store.env, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "execution_instances is a Delta table now, over its 2 files" in migrated.stdout
    assert tags(store)["script_orders"] == {"cur"}  # the superseded objects were left out
    got = every_view(store, store.wh.duckdb_path)

    reference = WarehouseSettings(
        warehouse=str(tmp_path / "reference"), duckdb_path=str(tmp_path / "reference.duckdb")
    )
    for day, runs in days.items():
        with DayWriter(day=day, publisher=warehouse_publisher(reference)) as w:
            w.write("execution_instances", _table(_instances(runs[-1])))
            w.write("script_orders", _one(runs[-1], "script_orders"))
            w.write("order_batches", _one(runs[-1], "order_batches"))
            w.commit()
    ref = build_warehouse(warehouse=reference.warehouse, duckdb_path=reference.duckdb_path)
    assert got == every_view(Store("local", {}, reference), ref.duckdb_path)
    again = subprocess.run(
        [COC_ETL, "migrate"], env=store.env, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert "every table is a Delta table already" in again.stdout


def _instances(tag: str):  # type: ignore[no-untyped-def]
    from tests.integration.parquet_crash_writer import instances

    return instances(150, start=0, tag=tag)
