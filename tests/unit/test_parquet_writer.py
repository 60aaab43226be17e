"""DayWriter: streaming a day's files, committing them to the Delta tables, aborting, the
shrink guard, and one live run per day.

The writer is given the local Delta publisher (``pipelines/lake/publish.py``); failures are
injected with a publisher that fails, never a patched ``os`` function. What readers see is
read through each table's Delta log (``published``), files with pyarrow.
"""

from __future__ import annotations

import _thread
import datetime as dt
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from pipelines.lake import day_writer as parquet
from pipelines.lake import publish
from pipelines.lake.day_writer import (
    DayLockedError,
    DayWriter,
    SchemaMismatchError,
    ShrinkRefusedError,
    TableStats,
    WriteError,
)
from pipelines.lake.publish import DeltaPublish, ShrinkGuard, StagedDay
from pipelines.lake.tables import Lake
from pipelines.transform.schemas import EXECUTION_INSTANCES, ORDER_BATCHES, SCRIPT_ORDERS, TABLES

DAY = dt.date(2026, 11, 25)
OTHER_DAY = dt.date(2026, 11, 24)


def instances(n: int, *, start: int = 0, tag: str = "v1") -> pa.RecordBatch:
    """``n`` execution_instances rows; ``tag`` tells versions of a day apart."""
    ids = range(start, start + n)
    columns: dict[str, list] = {f.name: [None] * n for f in EXECUTION_INSTANCES}
    columns |= {
        "execute_uuid": [f"{tag}-{i // 10}" for i in ids],
        "batch_index": [i % 10 for i in ids],
        "instance_id": list(ids),
        "status": ["ABNORMAL" if i % 7 == 0 else "FINISHED" for i in ids],
        "message": [None if i % 3 else f"exit {i}" for i in ids],
        "created_at": [1_764_000_000_000 + i for i in ids],
        "finished_at": [None if i % 5 == 0 else 1_764_000_000_500 + i for i in ids],
        "duration_ms": [None if i % 5 == 0 else 500 for i in ids],
        "host_name": [f"host-{i % 4}" for i in ids],
        "custom_attributes": [[("env", tag)] if i % 2 else None for i in ids],
    }
    return pa.RecordBatch.from_pydict(columns, schema=EXECUTION_INSTANCES)


def orders(tag: str = "v1", n: int = 3) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [{"execute_uuid": f"{tag}-{i}", "order_name": tag, "batch_count": 1} for i in range(n)],
        schema=SCRIPT_ORDERS,
    )


def batches(tag: str = "v1", n: int = 3) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [{"execute_uuid": f"{tag}-{i}", "batch_index": 0, "total_instances": 10} for i in range(n)],
        schema=ORDER_BATCHES,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The warehouse root as a local path, whatever filesystem the writer is given."""
    return tmp_path / "wh"


@pytest.fixture
def publisher(root: Path) -> DeltaPublish:
    return parquet.publisher_for(str(root))


@pytest.fixture
def open_day(publisher: DeltaPublish) -> Callable[..., DayWriter]:
    def open_day(day: dt.date = DAY, **kwargs: object) -> DayWriter:
        return DayWriter(day=day, publisher=publisher, **kwargs)

    return open_day


def publish_day(open_day: Callable[..., DayWriter], tag: str, day: dt.date = DAY, n: int = 25):
    with open_day(day) as w:
        w.write("execution_instances", instances(n, tag=tag))
        w.write("script_orders", orders(tag))
        w.write("order_batches", batches(tag))
        return w.run_id, w.commit()


def published(root: Path) -> dict[str, bytes]:
    """Every file readers see through the tables' Delta logs, by path relative to the root."""
    seen: dict[str, bytes] = {}
    for table in TABLES:
        if not (root / table / "_delta_log").exists():
            continue
        for uri in DeltaTable(str(root / table)).file_uris():
            path = Path(uri.removeprefix("file://"))
            seen[str(path.relative_to(root))] = path.read_bytes()
    return seen


def staging(root: Path, day: dt.date = DAY) -> list[str]:
    folder = root / publish.STAGING / f"dt={day.isoformat()}"
    return sorted(os.listdir(folder)) if folder.exists() else []


def day_files(root: Path, table: str, day: dt.date = DAY) -> list[Path]:
    """The files the table's newest version names for ``day``."""
    named = Lake(str(root)).snapshot(table).files.get(day, ())
    return sorted(root / table / p for p in named)


def uncommitted(root: Path, table: str, day: dt.date = DAY) -> list[Path]:
    """Files in the day's folder that no commit names now."""
    named = set(day_files(root, table, day))
    folder = root / table / f"dt={day.isoformat()}"
    return sorted(p for p in folder.glob("*.parquet") if p not in named)


# -- writing ---------------------------------------------------------------------------------


def test_batches_stream_into_one_file_of_whole_row_groups(open_day, root: Path) -> None:
    sizes = [30, 70, 250, 1, 49, 5]
    parts = []
    with open_day(row_group_rows=100) as w:
        staged = root / "execution_instances" / f"dt={DAY}"
        start = 0
        for n in sizes:
            parts.append(instances(n, start=start))
            w.write("execution_instances", parts[-1])
            start += n
        assert [p.name for p in staged.iterdir()] == [f"part-{w.run_id}-00000.parquet"]
        stats = w.commit()
        run_id = w.run_id
    assert staging(root) == []

    (path,) = day_files(root, "execution_instances")
    assert path.name == f"part-{run_id}-00000.parquet"
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [100] * 4 + [5]
    table = pq.read_table(path)
    assert table.schema.equals(EXECUTION_INSTANCES)
    assert table.equals(pa.Table.from_batches(parts))
    assert stats["execution_instances"] == TableStats(rows=405, files=1, bytes=path.stat().st_size)


def test_full_row_groups_reach_the_staged_file_before_commit(open_day, root: Path) -> None:
    with open_day(row_group_rows=50) as w:
        staged = root / "execution_instances" / f"dt={DAY}"
        w.write("execution_instances", instances(10))
        small = sum(p.stat().st_size for p in staged.glob("*.parquet"))
        w.write("execution_instances", instances(5_000, start=10))
        big = sum(p.stat().st_size for p in staged.glob("*.parquet"))
        assert big > small + 10_000  # 100 row groups went out; only 10 rows stay buffered
        assert published(root) == {}  # nothing visible to readers yet
        w.commit()


def test_a_table_without_rows_gets_an_empty_file_with_its_schema(open_day, root: Path) -> None:
    with open_day() as w:
        w.write("execution_instances", instances(3))
        stats = w.commit()
    for name, schema in TABLES.items():
        (path,) = day_files(root, name)
        table = pq.read_table(path)
        assert table.schema.equals(schema)
        assert table.num_rows == (3 if name == "execution_instances" else 0)
        assert stats[name].files == 1 and stats[name].bytes == path.stat().st_size
    assert stats["script_orders"].rows == 0


def test_a_rerun_that_finds_no_rows_replaces_the_old_ones_when_allowed(
    open_day, root: Path
) -> None:
    publish_day(open_day, "v1")
    allowing = parquet.publisher_for(str(root), shrink=ShrinkGuard(allow=True))
    with DayWriter(day=DAY, publisher=allowing) as w:
        w.commit()
    for name in TABLES:
        (path,) = day_files(root, name)
        assert pq.read_table(path).num_rows == 0


@pytest.mark.parametrize(("new", "refused"), [(0, True), (12, True), (13, False), (40, False)])
def test_a_day_that_would_shrink_by_more_than_half_is_refused_and_stays(
    open_day, root: Path, new: int, refused: bool
) -> None:
    publish_day(open_day, "v1", n=25)
    before = published(root)
    if not refused:
        publish_day(open_day, "v2", n=new)
        assert pq.read_table(day_files(root, "execution_instances")[0]).num_rows == new
        return
    with pytest.raises(ShrinkRefusedError) as info:
        publish_day(open_day, "v2", n=new)
    message = str(info.value)
    assert f"day {DAY}" in message and "from 25 published instances to" in message
    assert f"to {new} " in message and "COC_ALLOW_SHRINK" in message
    assert isinstance(info.value, WriteError)  # the CLI's exit 4
    assert published(root) == before
    assert uncommitted(root, "execution_instances") == []


def test_a_batch_of_the_wrong_schema_is_refused_by_name(open_day) -> None:
    good = instances(3)
    wrong_type = good.set_column(1, "batch_index", good.column(1).cast(pa.int64()))
    missing = good.drop_columns(["message"])
    null_key = good.set_column(0, "execute_uuid", pa.array([None, "a", "b"], pa.string()))
    with open_day() as w:
        with pytest.raises(SchemaMismatchError) as info:
            w.write("execution_instances", wrong_type)
        assert "'batch_index'" in str(info.value) and "int64" in str(info.value)
        assert "table=execution_instances" in str(info.value) and "day=2026-11-25" in str(
            info.value
        )
        with pytest.raises(SchemaMismatchError, match=r"missing columns \['message'\]"):
            w.write("execution_instances", missing)
        with pytest.raises(SchemaMismatchError, match="'execute_uuid' has 1 nulls"):
            w.write("execution_instances", null_key)
        with pytest.raises(SchemaMismatchError, match="table=script_orders"):
            w.write("script_orders", good)
        with pytest.raises(WriteError, match="unknown table 'instances'"):
            w.write("instances", good)


def test_only_nullability_differing_is_accepted_and_written_with_the_table_schema(
    open_day, root: Path
) -> None:
    loose = pa.schema([f.with_nullable(True) for f in EXECUTION_INSTANCES])
    batch = instances(4)
    with open_day() as w:
        w.write("execution_instances", pa.Table.from_batches([batch]).cast(loose))
        w.commit()
    (path,) = day_files(root, "execution_instances")
    assert pq.read_table(path).schema.equals(EXECUTION_INSTANCES)


# -- aborting --------------------------------------------------------------------------------


def test_an_exception_aborts_and_leaves_the_published_day_untouched(open_day, root: Path) -> None:
    publish_day(open_day, "v1")
    before = published(root)
    with pytest.raises(RuntimeError, match="walk failed"), open_day() as w:
        w.write("execution_instances", instances(500, tag="v2"))
        raise RuntimeError("walk failed")
    assert published(root) == before
    assert staging(root) == []


def test_leaving_without_commit_aborts(open_day, root: Path) -> None:
    publish_day(open_day, "v1")
    before = published(root)
    with open_day() as w:
        w.write("script_orders", orders("v2"))
    assert published(root) == before
    assert staging(root) == []
    assert uncommitted(root, "script_orders") == []
    with pytest.raises(WriteError, match="after the run was aborted"):
        w.commit()


# -- publishing ------------------------------------------------------------------------------


def test_committing_a_day_again_replaces_it_whole(open_day, root: Path) -> None:
    run1, _ = publish_day(open_day, "v1", n=40)
    run2, stats = publish_day(open_day, "v2", n=25)
    assert run1 != run2
    for name in TABLES:
        (path,) = day_files(root, name)
        assert path.name == f"part-{run2}-00000.parquet"
    table = pq.read_table(day_files(root, "execution_instances")[0])
    assert table.num_rows == 25 == stats["execution_instances"].rows
    assert set(table.column("execute_uuid").to_pylist()) == {f"v2-{i}" for i in range(3)}
    assert staging(root) == []


def test_other_days_and_their_files_in_progress_are_untouched(open_day, root: Path) -> None:
    publish_day(open_day, "old", day=OTHER_DAY)
    other_before = {k: v for k, v in published(root).items() if f"dt={OTHER_DAY}" in k}
    # a run of the other day, in progress in another process: its file is not committed yet
    foreign = (
        root / "script_orders" / f"dt={OTHER_DAY}" / f"part-{parquet.new_run_id()}-00000.parquet"
    )
    foreign.write_bytes(b"in progress")

    publish_day(open_day, "v1")
    publish_day(open_day, "v2")
    after = published(root)
    assert {k: v for k, v in after.items() if f"dt={OTHER_DAY}" in k} == other_before
    assert foreign.read_bytes() == b"in progress"


def test_a_dead_runs_files_are_never_read(open_day, root: Path) -> None:
    publish_day(open_day, "v1")
    before = published(root)
    dead = root / "execution_instances" / f"dt={DAY}" / f"part-{parquet.new_run_id()}-00000.parquet"
    dead.write_bytes(b"PAR1 half a file")  # killed while writing: no commit names it
    assert published(root) == before
    run, _ = publish_day(open_day, "v2")
    assert [p.name for p in day_files(root, "execution_instances")] == [f"part-{run}-00000.parquet"]
    assert dead in uncommitted(root, "execution_instances")  # the vacuum's to remove


# -- one live run per day --------------------------------------------------------------------


def test_a_second_writer_of_a_live_day_fails_at_once_naming_the_first(open_day, root: Path) -> None:
    publish_day(open_day, "v1")
    with open_day() as first:
        first.write("execution_instances", instances(30, tag="v2"))
        staged = uncommitted(root, "execution_instances")
        with pytest.raises(DayLockedError) as info, open_day(lock_timeout_s=0):
            pytest.fail("the second writer got in")
        message = str(info.value)
        assert f"day {DAY} is being written by run {first.run_id}" in message
        assert f"pid {os.getpid()} on {socket.gethostname()}, since " in message
        assert info.value.holder is not None and info.value.holder.run_id == first.run_id
        assert isinstance(info.value, WriteError)  # the CLI's exit 4
        # the first run's staging is untouched, and it publishes as if alone
        assert uncommitted(root, "execution_instances") == staged
        first.write("script_orders", orders("v2"))
        first.commit()
    table = pq.read_table(day_files(root, "execution_instances")[0])
    assert table.num_rows == 30 and set(table.column("execute_uuid").to_pylist()) == {
        "v2-0",
        "v2-1",
        "v2-2",
    }
    assert staging(root) == []


def test_a_second_writer_waits_for_the_first_then_replaces_the_day(
    open_day, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="pipelines.locks.day")
    first = open_day().__enter__()
    first.write("execution_instances", instances(30, tag="v1"))
    second_done = threading.Event()

    def second() -> None:
        with open_day(lock_timeout_s=30) as w:
            w.write("execution_instances", instances(20, tag="v2"))
            w.commit()
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    try:
        while "waiting for" not in caplog.text:
            assert thread.is_alive(), "the second writer did not wait"
            second_done.wait(0.01)
        assert f"waiting for run {first.run_id} (pid {os.getpid()}" in caplog.text
        assert f"to finish {DAY}" in caplog.text
        assert not second_done.is_set()
        first.commit()
    finally:
        first.__exit__(None, None, None)
        thread.join(30)
    assert second_done.is_set()
    table = pq.read_table(day_files(root, "execution_instances")[0])
    assert table.num_rows == 20  # the second run's day, whole, and only it
    assert set(table.column("execute_uuid").to_pylist()) == {"v2-0", "v2-1"}
    assert staging(root) == []


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's own SIGINT handler (raise ``KeyboardInterrupt``) during the test, whatever
    handler an earlier test of the same worker left (an in-process Dagster run replaces it
    with one that only records the interrupt while it runs): ``interrupt_main`` calls it."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("python_sigint")
def test_an_interrupted_wait_leaves_nothing_behind(open_day, root: Path) -> None:
    with open_day() as first:
        first.write("script_orders", orders("v1"))
        timer = threading.Timer(0.3, _thread.interrupt_main)
        timer.start()
        second = open_day(lock_timeout_s=30)
        with pytest.raises(KeyboardInterrupt):
            second.__enter__()
        timer.join()
        assert not second.lock.held
        assert staging(root) == [".lock"]
        first.commit()
    assert staging(root) == []
    with pytest.raises(WriteError, match="after the run was aborted"):
        second.write("script_orders", orders("v2"))


class _FailingPublisher(DeltaPublish):
    """The local publisher, committing ``commit_first`` tables, then raising ``exc``."""

    def __init__(self, inner: DeltaPublish, exc: BaseException, commit_first: int = 1) -> None:
        super().__init__(inner.lake, inner.fs, inner.root)
        self.exc, self.commit_first, self.published = exc, commit_first, False

    def publish(self, staged: StagedDay, files, schemas) -> None:  # type: ignore[no-untyped-def]
        self.published = True
        first = publish.commit_order(staged.tables)[: self.commit_first]
        super().publish(
            StagedDay(root=staged.root, day=staged.day, run_id=staged.run_id, tables=tuple(first)),
            files,
            schemas,
        )
        self.committed[staged.run_id] = set(first)  # as when the next commit fails
        raise self.exc


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt(), SystemExit(3)])
@pytest.mark.parametrize("where", ["body", "publish"])
def test_any_exception_removes_the_uncommitted_files_and_releases_the_day(
    publisher: DeltaPublish, root: Path, exc: BaseException, where: str
) -> None:
    publish_day(lambda day=DAY, **kw: DayWriter(day=day, publisher=publisher, **kw), "v1")
    before = published(root)
    failing = _FailingPublisher(publisher, exc) if where == "publish" else publisher
    with pytest.raises(type(exc)), DayWriter(day=DAY, publisher=failing) as w:
        w.write("execution_instances", instances(500, tag="v2"))
        w.write("script_orders", orders("v2"))
        if where == "body":
            raise exc
        w.commit()
    assert failing is publisher or failing.published
    assert not w.lock.held
    if where == "body":
        assert published(root) == before
    else:  # the first table was committed: its new day is whole, the others kept theirs
        now = published(root)
        changed = {k for k in before.keys() | now.keys() if before.get(k) != now.get(k)}
        assert {k.split("/")[0] for k in changed} == {"execution_instances"}
    assert staging(root) == []
    for table in ("script_orders", "order_batches"):
        assert uncommitted(root, table) == [] or where == "body"
    allowing = parquet.publisher_for(str(root), shrink=ShrinkGuard(allow=True))
    with DayWriter(day=DAY, publisher=allowing, lock_timeout_s=0) as again:  # the day is free
        again.commit()


def test_a_warehouse_that_cannot_hold_a_lock_fails_before_anything_is_written(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("not a folder")
    writer = DayWriter(root=str(tmp_path / "file" / "wh"), day=DAY)
    with pytest.raises(WriteError) as info, writer:
        pytest.fail("the writer started")
    assert "cannot take the day's lock" in str(info.value)
    assert f"path={tmp_path}/file/wh/{publish.STAGING}/dt={DAY}/.lock" in str(info.value)
    assert not writer.lock.held


def test_the_publisher_follows_the_storage(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    local = parquet.publisher_for(str(tmp_path / "wh"))
    assert local.local_root == str(tmp_path / "wh") and local.lake.root == str(tmp_path / "wh")
    assert parquet.publisher_for((tmp_path / "wh").as_uri()).local_root == str(tmp_path / "wh")
    subtree = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    on_disk = parquet.publisher_for("wh", filesystem=subtree)
    assert on_disk.local_root == str(tmp_path / "wh")
    no_disk = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem("file")))
    with pytest.raises(ValueError, match="not on a local disk"):
        parquet.publisher_for(str(tmp_path), filesystem=no_disk)
    with pytest.raises(ValueError, match="needs its settings"):
        parquet.publisher_for("s3://bucket/wh")
    with pytest.raises(ValueError, match=r"a root .* or a publisher, not both"):
        DayWriter(root=str(tmp_path), day=DAY, publisher=local)


def test_a_file_uri_is_a_local_folder(tmp_path: Path) -> None:
    with DayWriter(root=(tmp_path / "wh").as_uri(), day=DAY) as w:
        w.commit()
    assert len(day_files(tmp_path / "wh", "script_orders")) == 1
