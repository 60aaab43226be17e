"""DayWriter: streaming into staging, the three ways of publishing, aborting and cleaning up,
and one live run per day.

Every behaviour is checked under each publish mode, by injecting the publisher: the Linux
``RENAME_EXCHANGE`` swap, the rename-away fallback (a ``LocalSwap`` whose exchange says "not
supported"), and the object-storage manifest path (``ManifestPublish`` on a local
``SubTreeFileSystem``, superseded objects deleted at once: no grace, no views built).
Failures are injected the same way: a publisher built with a failing
step, never a patched ``os`` function. Files are read back with pyarrow.
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
from typing import ClassVar

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from pipelines.day_manifests import ManifestPublish, read_manifest, run_of

from pipelines import parquet, publish
from pipelines.parquet import DayLockedError, DayWriter, SchemaMismatchError, TableStats, WriteError
from pipelines.publish import LocalSwap, Publisher, StagedDay
from pipelines.schemas import EXECUTION_INSTANCES, ORDER_BATCHES, SCRIPT_ORDERS, TABLES

DAY = dt.date(2026, 11, 25)
OTHER_DAY = dt.date(2026, 11, 24)
MODES = ("exchange", "fallback", "object_store")


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


@pytest.fixture(params=MODES)
def publisher(request: pytest.FixtureRequest, tmp_path: Path, root: Path) -> Iterator[Publisher]:
    """Each publish mode's publisher; afterwards, check that mode is the one that ran."""
    results: list[bool] = []

    def exchange(a: str, b: str) -> bool:
        results.append(publish.rename_exchange(a, b))
        return results[-1]

    def unsupported(a: str, b: str) -> bool:
        return False  # as on a kernel or filesystem without RENAME_EXCHANGE

    if request.param == "exchange":
        if not publish.HAS_EXCHANGE:
            pytest.skip("renameat2 is not available on this platform")
        yield LocalSwap(str(root), exchange=exchange)
    elif request.param == "fallback":
        yield LocalSwap(str(root), exchange=unsupported)
    else:
        fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
        yield ManifestPublish(fs, "wh", retire_grace_s=0)
    assert all(results)  # every swap of an existing day went through RENAME_EXCHANGE


@pytest.fixture
def open_day(publisher: Publisher) -> Callable[..., DayWriter]:
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
    """Every file readers can see (outside ``_staging``), by path relative to the root."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != publish.STAGING
    }


def staging(root: Path, day: dt.date = DAY) -> list[str]:
    folder = root / publish.STAGING / f"dt={day.isoformat()}"
    return sorted(os.listdir(folder)) if folder.exists() else []


def day_files(root: Path, table: str, day: dt.date = DAY) -> list[Path]:
    return sorted((root / table / f"dt={day.isoformat()}").glob("*.parquet"))


# -- writing ---------------------------------------------------------------------------------


def test_batches_stream_into_one_file_of_whole_row_groups(open_day, root: Path) -> None:
    sizes = [30, 70, 250, 1, 49, 5]
    parts = []
    with open_day(row_group_rows=100) as w:
        staged = root / publish.STAGING / f"dt={DAY}" / w.run_id / "execution_instances"
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
        staged = root / publish.STAGING / f"dt={DAY}" / w.run_id / "execution_instances"
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


def test_a_rerun_that_finds_no_rows_replaces_the_old_ones(open_day, root: Path) -> None:
    publish_day(open_day, "v1")
    with open_day() as w:
        w.commit()
    for name in TABLES:
        (path,) = day_files(root, name)
        assert pq.read_table(path).num_rows == 0


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


def test_other_days_and_their_staging_are_untouched(open_day, root: Path) -> None:
    publish_day(open_day, "old", day=OTHER_DAY)
    other_before = {k: v for k, v in published(root).items() if f"dt={OTHER_DAY}" in k}
    # a run of the other day, in progress in another process: older than ours, still not ours
    foreign = root / publish.STAGING / f"dt={OTHER_DAY}" / parquet.new_run_id() / "script_orders"
    foreign.mkdir(parents=True)
    (foreign / "part.parquet").write_bytes(b"in progress")

    publish_day(open_day, "v1")
    publish_day(open_day, "v2")
    after = published(root)
    assert {k: v for k, v in after.items() if f"dt={OTHER_DAY}" in k} == other_before
    assert (foreign / "part.parquet").read_bytes() == b"in progress"


def test_a_new_writer_removes_every_dead_run_of_its_day(open_day, root: Path) -> None:
    publish_day(open_day, "v1")
    before = published(root)
    day_staging = root / publish.STAGING / f"dt={DAY}"
    stale = day_staging / parquet.new_run_id() / "execution_instances"
    stale.mkdir(parents=True)
    (stale / "part-x-00000.parquet").write_bytes(b"PAR1 half a file")
    # a run named later than ours (a clock set back) whose lock is free: dead all the same
    later = day_staging / "99991231T000000000000Z-00000000" / "script_orders"
    later.mkdir(parents=True)
    with open_day() as w:
        assert staging(root) == [".lock"]  # ours appears with the first write
        w.write("script_orders", orders("v2"))
        assert staging(root) == sorted([".lock", w.run_id])
    assert published(root) == before
    assert staging(root) == []


# -- one live run per day --------------------------------------------------------------------


def test_a_second_writer_of_a_live_day_fails_at_once_naming_the_first(open_day, root: Path) -> None:
    publish_day(open_day, "v1")
    with open_day() as first:
        first.write("execution_instances", instances(30, tag="v2"))
        staged = sorted((root / publish.STAGING / f"dt={DAY}" / first.run_id).rglob("*"))
        with pytest.raises(DayLockedError) as info, open_day(lock_timeout_s=0):
            pytest.fail("the second writer got in")
        message = str(info.value)
        assert f"day {DAY} is being written by run {first.run_id}" in message
        assert f"pid {os.getpid()} on {socket.gethostname()}, since " in message
        assert info.value.holder is not None and info.value.holder.run_id == first.run_id
        assert isinstance(info.value, WriteError)  # the CLI's exit 4
        # the first run's staging is untouched, and it publishes as if alone
        assert sorted((root / publish.STAGING / f"dt={DAY}" / first.run_id).rglob("*")) == staged
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
    caplog.set_level("INFO", logger="pipelines.daylock")
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
        assert staging(root) == sorted([".lock", first.run_id])
        first.commit()
    assert staging(root) == []
    with pytest.raises(WriteError, match="after the run was aborted"):
        second.write("script_orders", orders("v2"))


class _FailingPublisher:
    """A publisher that publishes the first table, then raises ``exc``."""

    def __init__(self, inner: Publisher, exc: BaseException) -> None:
        self.inner, self.exc, self.published = inner, exc, False
        self.fs, self.root = inner.fs, inner.root
        self.local_root, self.location = inner.local_root, inner.location

    def publish(self, staged: StagedDay) -> None:
        self.published = True
        raise self.exc

    def recover(self, staged: StagedDay) -> None:
        self.inner.recover(staged)


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt(), SystemExit(3)])
@pytest.mark.parametrize("where", ["body", "publish"])
def test_any_exception_removes_the_staging_and_releases_the_day(
    publisher: Publisher, root: Path, exc: BaseException, where: str
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
    assert published(root) == before
    assert staging(root) == []
    with DayWriter(day=DAY, publisher=publisher, lock_timeout_s=0) as again:  # the day is free
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


def test_a_day_renamed_away_by_a_killed_fallback_swap_is_put_back(root: Path) -> None:
    with DayWriter(root=str(root), day=DAY) as w:
        w.write("execution_instances", instances(7))
        w.commit()
    before = published(root)
    # the state ``kill -9`` leaves between the fallback's two renames
    killed = root / publish.STAGING / f"dt={DAY}" / parquet.new_run_id()
    (killed / "execution_instances").mkdir(parents=True)
    os.rename(root / "execution_instances" / f"dt={DAY}", killed / "execution_instances.old")

    with DayWriter(root=str(root), day=DAY):
        assert published(root) == before
    assert staging(root) == []


def test_a_failed_swap_puts_every_table_back(root: Path) -> None:
    if not publish.HAS_EXCHANGE:
        pytest.skip("renameat2 is not available on this platform")
    with DayWriter(root=str(root), day=DAY) as w:
        w.write("execution_instances", instances(7))
        w.commit()
    before = published(root)
    calls = []

    def second_swap_fails(a: str, b: str) -> bool:
        calls.append(b)
        if len(calls) == 2:
            raise OSError(5, "Input/output error", b)
        return publish.rename_exchange(a, b)

    failing = LocalSwap(str(root), exchange=second_swap_fails)
    with pytest.raises(WriteError) as info, DayWriter(day=DAY, publisher=failing) as w:
        w.write("execution_instances", instances(9, tag="v2"))
        w.commit()
    assert "table=script_orders" in str(info.value) and "nothing published" in str(info.value)
    assert calls[2] == calls[0]  # the first table was swapped back
    assert published(root) == before
    assert staging(root) == []


def test_a_failed_fallback_rename_puts_the_day_back(root: Path) -> None:
    with DayWriter(root=str(root), day=DAY) as w:
        w.write("execution_instances", instances(7))
        w.commit()
    before = published(root)

    def moving_in_fails(src: str, dst: str) -> None:
        if publish.STAGING in str(src) and not str(src).endswith(".old"):
            raise OSError(28, "No space left on device", dst)
        os.rename(src, dst)

    failing = LocalSwap(str(root), exchange=lambda a, b: False, rename=moving_in_fails)
    with pytest.raises(WriteError) as info, DayWriter(day=DAY, publisher=failing) as w:
        w.write("execution_instances", instances(9, tag="v2"))
        w.commit()
    assert "table=execution_instances" in str(info.value) and "No space left" in str(info.value)
    assert f"path={root}/execution_instances/dt={DAY}" in str(info.value)
    assert published(root) == before
    assert staging(root) == []


def test_exchange_swaps_two_folders(tmp_path: Path) -> None:
    if not publish.HAS_EXCHANGE:
        pytest.skip("renameat2 is not available on this platform")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from_a").touch()
    assert publish.rename_exchange(str(tmp_path / "a"), str(tmp_path / "b"))
    assert os.listdir(tmp_path / "b") == ["from_a"] and os.listdir(tmp_path / "a") == []
    with pytest.raises(FileNotFoundError):
        publish.rename_exchange(str(tmp_path / "a"), str(tmp_path / "missing"))


# -- object storage --------------------------------------------------------------------------


def test_a_filesystem_without_rename_publishes_by_copy(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")

    class FlakyCopies(pafs.FSSpecHandler):
        """A local disk seen through a handler: pyarrow cannot tell it is local."""

        fail_at: int | None = None
        copies: ClassVar[list[str]] = []

        def copy_file(self, src: str, dest: str) -> None:
            self.copies.append(dest)
            if len(self.copies) == self.fail_at:
                raise OSError("503 Slow Down")
            super().copy_file(src, dest)

    handler = FlakyCopies(fsspec.filesystem("file", auto_mkdir=True))  # like S3: no folders
    fs = pafs.PyFileSystem(handler)
    root, locks = tmp_path / "wh", str(tmp_path / "locks")

    def open_day() -> DayWriter:  # published by manifest by default
        return DayWriter(root=str(root), day=DAY, filesystem=fs, lock_dir=locks)

    with open_day() as w:
        w.write("execution_instances", instances(5))
        w.commit()
    assert len(handler.copies) == len(TABLES)
    before = published(root)

    handler.fail_at = len(TABLES) + 2  # the second table of the next run
    with pytest.raises(WriteError) as info, open_day() as w:
        w.write("execution_instances", instances(9, tag="v2"))
        w.commit()
    assert "table=script_orders" in str(info.value) and "503 Slow Down" in str(info.value)
    assert published(root) == before  # the first table's copy was deleted again
    assert staging(root) == []

    handler.fail_at = None
    with open_day() as w:
        w.write("execution_instances", instances(9, tag="v2"))
        w.commit()
    manifest = read_manifest(fs, str(root), DAY)
    assert manifest is not None and manifest.run_id == w.run_id
    (path,) = manifest.tables["execution_instances"]
    assert pq.read_table(root / path).num_rows == 9
    # the first run's objects are superseded, kept for the grace period: not read
    assert len(day_files(root, "execution_instances")) == 2
    first_run = {run_of(p) for p in manifest.retired}
    assert len(manifest.retired) == len(TABLES) and len(first_run) == 1
    assert w.run_id not in first_run


def test_object_storage_days_are_locked_in_a_local_folder_keyed_by_the_uri(
    tmp_path: Path,
) -> None:
    fsspec = pytest.importorskip("fsspec")
    fs = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem("file", auto_mkdir=True)))
    locks = tmp_path / "locks"

    def open_day(root: str, **kwargs: object) -> DayWriter:
        return DayWriter(root=root, day=DAY, filesystem=fs, lock_dir=str(locks), **kwargs)

    with open_day(str(tmp_path / "wh")) as first:
        (lock,) = locks.glob("*/*")
        assert lock.name == f"dt={DAY}.lock" and first.lock.path == str(lock)
        assert not (tmp_path / "wh" / publish.STAGING / f"dt={DAY}" / ".lock").exists()
        with pytest.raises(DayLockedError, match=f"run {first.run_id}"):
            open_day(str(tmp_path / "wh"), lock_timeout_s=0).__enter__()
        with open_day(str(tmp_path / "other")) as other:  # another warehouse: another lock
            assert other.lock.path != first.lock.path
            other.commit()
        first.commit()
    assert list(locks.iterdir()) == []


def test_the_publisher_follows_the_storage(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    local = parquet.publisher_for(str(tmp_path / "wh"))
    assert isinstance(local, LocalSwap) and local.local_root == str(tmp_path / "wh")
    assert isinstance(parquet.publisher_for((tmp_path / "wh").as_uri()), LocalSwap)
    subtree = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    on_disk = parquet.publisher_for("wh", filesystem=subtree)
    assert isinstance(on_disk, LocalSwap) and on_disk.local_root == str(tmp_path / "wh")
    # a filesystem that cannot say it is a local disk has no rename: it copies
    no_rename = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem("file")))
    remote = parquet.publisher_for(str(tmp_path), filesystem=no_rename)
    assert isinstance(remote, ManifestPublish) and remote.local_root is None
    with pytest.raises(ValueError, match=r"a root .* or a publisher, not both"):
        DayWriter(root=str(tmp_path), day=DAY, publisher=local)


def test_a_file_uri_is_a_local_folder(tmp_path: Path) -> None:
    with DayWriter(root=(tmp_path / "wh").as_uri(), day=DAY) as w:
        w.commit()
    assert len(day_files(tmp_path / "wh", "script_orders")) == 1
