"""DayWriter: streaming into staging, the three ways of publishing, aborting and cleaning up.

Every behaviour is checked under each publish mode: the Linux ``RENAME_EXCHANGE`` swap, the
rename-away fallback, and the object-storage copy-then-delete path (forced on a local
``SubTreeFileSystem``). Files are read back with pyarrow.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipelines import parquet
from pipelines.flatten import EXECUTION_INSTANCES, ORDER_BATCHES, SCRIPT_ORDERS, TABLES
from pipelines.parquet import DayWriter, SchemaMismatchError, TableStats, WriteError

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


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test under each publish mode, and check that mode is the one that ran."""
    real, results = parquet._exchange, []

    def exchange(a: str, b: str) -> bool:
        results.append(real(a, b))
        return results[-1]

    def unsupported(a: str, b: str) -> bool:
        return False  # as on a kernel or filesystem without RENAME_EXCHANGE

    def never(a: str, b: str) -> bool:
        raise AssertionError("object storage has no rename")

    if request.param == "exchange" and parquet._renameat2 is None:
        pytest.skip("renameat2 is not available on this platform")
    swap = {"exchange": exchange, "fallback": unsupported, "object_store": never}
    monkeypatch.setattr(parquet, "_exchange", swap[request.param])
    yield request.param
    assert all(results)  # every swap of an existing day went through RENAME_EXCHANGE


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The warehouse root as a local path, whatever filesystem the writer is given."""
    return tmp_path / "wh"


@pytest.fixture
def open_day(mode: str, tmp_path: Path, root: Path) -> Callable[..., DayWriter]:
    def open_day(day: dt.date = DAY, **kwargs: object) -> DayWriter:
        if mode == "object_store":
            fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
            return DayWriter(root="wh", day=day, filesystem=fs, object_store=True, **kwargs)
        return DayWriter(root=str(root), day=day, **kwargs)

    return open_day


def publish(open_day: Callable[..., DayWriter], tag: str, day: dt.date = DAY, n: int = 25):
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
        if p.is_file() and p.relative_to(root).parts[0] != parquet.STAGING
    }


def staging(root: Path, day: dt.date = DAY) -> list[str]:
    folder = root / parquet.STAGING / f"dt={day.isoformat()}"
    return sorted(os.listdir(folder)) if folder.exists() else []


def day_files(root: Path, table: str, day: dt.date = DAY) -> list[Path]:
    return sorted((root / table / f"dt={day.isoformat()}").glob("*.parquet"))


# -- writing ---------------------------------------------------------------------------------


def test_batches_stream_into_one_file_of_whole_row_groups(open_day, root: Path) -> None:
    sizes = [30, 70, 250, 1, 49, 5]
    parts = []
    with open_day(row_group_rows=100) as w:
        staged = root / parquet.STAGING / f"dt={DAY}" / w.run_id / "execution_instances"
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
        staged = root / parquet.STAGING / f"dt={DAY}" / w.run_id / "execution_instances"
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
    publish(open_day, "v1")
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
    publish(open_day, "v1")
    before = published(root)
    with pytest.raises(RuntimeError, match="walk failed"), open_day() as w:
        w.write("execution_instances", instances(500, tag="v2"))
        raise RuntimeError("walk failed")
    assert published(root) == before
    assert staging(root) == []


def test_leaving_without_commit_aborts(open_day, root: Path) -> None:
    publish(open_day, "v1")
    before = published(root)
    with open_day() as w:
        w.write("script_orders", orders("v2"))
    assert published(root) == before
    assert staging(root) == []
    with pytest.raises(WriteError, match="after the run was aborted"):
        w.commit()


# -- publishing ------------------------------------------------------------------------------


def test_committing_a_day_again_replaces_it_whole(open_day, root: Path) -> None:
    run1, _ = publish(open_day, "v1", n=40)
    run2, stats = publish(open_day, "v2", n=25)
    assert run1 != run2
    for name in TABLES:
        (path,) = day_files(root, name)
        assert path.name == f"part-{run2}-00000.parquet"
    table = pq.read_table(day_files(root, "execution_instances")[0])
    assert table.num_rows == 25 == stats["execution_instances"].rows
    assert set(table.column("execute_uuid").to_pylist()) == {f"v2-{i}" for i in range(3)}
    assert staging(root) == []


def test_other_days_and_their_staging_are_untouched(open_day, root: Path) -> None:
    publish(open_day, "old", day=OTHER_DAY)
    other_before = {k: v for k, v in published(root).items() if f"dt={OTHER_DAY}" in k}
    # a run of the other day, in progress in another process: older than ours, still not ours
    foreign = root / parquet.STAGING / f"dt={OTHER_DAY}" / parquet.new_run_id() / "script_orders"
    foreign.mkdir(parents=True)
    (foreign / "part.parquet").write_bytes(b"in progress")

    publish(open_day, "v1")
    publish(open_day, "v2")
    after = published(root)
    assert {k: v for k, v in after.items() if f"dt={OTHER_DAY}" in k} == other_before
    assert (foreign / "part.parquet").read_bytes() == b"in progress"


def test_a_new_writer_removes_older_runs_of_its_day_only(open_day, root: Path) -> None:
    publish(open_day, "v1")
    before = published(root)
    day_staging = root / parquet.STAGING / f"dt={DAY}"
    stale = day_staging / parquet.new_run_id() / "execution_instances"
    stale.mkdir(parents=True)
    (stale / "part-x-00000.parquet").write_bytes(b"PAR1 half a file")
    with open_day() as w:
        newer = day_staging / "99991231T000000000000Z-00000000"  # a later run still going
        newer.mkdir()
        assert staging(root) == [newer.name]  # ours appears with the first write
        w.write("script_orders", orders("v2"))
        assert staging(root) == sorted([newer.name, w.run_id])
    assert published(root) == before
    assert staging(root) == [newer.name]


def test_a_day_renamed_away_by_a_killed_fallback_swap_is_put_back(root: Path) -> None:
    with DayWriter(root=str(root), day=DAY) as w:
        w.write("execution_instances", instances(7))
        w.commit()
    before = published(root)
    # the state ``kill -9`` leaves between the fallback's two renames
    killed = root / parquet.STAGING / f"dt={DAY}" / parquet.new_run_id()
    (killed / "execution_instances").mkdir(parents=True)
    os.rename(root / "execution_instances" / f"dt={DAY}", killed / "execution_instances.old")

    with DayWriter(root=str(root), day=DAY):
        assert published(root) == before
    assert staging(root) == []


def test_a_failed_swap_puts_every_table_back(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if parquet._renameat2 is None:
        pytest.skip("renameat2 is not available on this platform")
    with DayWriter(root=str(root), day=DAY) as w:
        w.write("execution_instances", instances(7))
        w.commit()
    before = published(root)
    real, calls = parquet._exchange, []

    def second_swap_fails(a: str, b: str) -> bool:
        calls.append(b)
        if len(calls) == 2:
            raise OSError(5, "Input/output error", b)
        return real(a, b)

    monkeypatch.setattr(parquet, "_exchange", second_swap_fails)
    with pytest.raises(WriteError) as info, DayWriter(root=str(root), day=DAY) as w:
        w.write("execution_instances", instances(9, tag="v2"))
        w.commit()
    assert "table=script_orders" in str(info.value) and "nothing published" in str(info.value)
    assert calls[2] == calls[0]  # the first table was swapped back
    assert published(root) == before
    assert staging(root) == []


def test_a_failed_fallback_rename_puts_the_day_back(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DayWriter(root=str(root), day=DAY) as w:
        w.write("execution_instances", instances(7))
        w.commit()
    before = published(root)
    rename = os.rename

    def moving_in_fails(src: str, dst: str) -> None:
        if parquet.STAGING in str(src) and not str(src).endswith(".old"):
            raise OSError(28, "No space left on device", dst)
        rename(src, dst)

    monkeypatch.setattr(parquet, "_exchange", lambda a, b: False)
    monkeypatch.setattr(parquet.os, "rename", moving_in_fails)
    with pytest.raises(WriteError) as info, DayWriter(root=str(root), day=DAY) as w:
        w.write("execution_instances", instances(9, tag="v2"))
        w.commit()
    monkeypatch.undo()
    assert "table=execution_instances" in str(info.value) and "No space left" in str(info.value)
    assert f"path={root}/execution_instances/dt={DAY}" in str(info.value)
    assert published(root) == before
    assert staging(root) == []


def test_exchange_swaps_two_folders(tmp_path: Path) -> None:
    if parquet._renameat2 is None:
        pytest.skip("renameat2 is not available on this platform")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from_a").touch()
    assert parquet._exchange(str(tmp_path / "a"), str(tmp_path / "b"))
    assert os.listdir(tmp_path / "b") == ["from_a"] and os.listdir(tmp_path / "a") == []
    with pytest.raises(FileNotFoundError):
        parquet._exchange(str(tmp_path / "a"), str(tmp_path / "missing"))


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
    root = tmp_path / "wh"
    with DayWriter(root=str(root), day=DAY, filesystem=fs) as w:  # copy-then-delete by default
        w.write("execution_instances", instances(5))
        w.commit()
    assert len(handler.copies) == len(TABLES)
    before = published(root)

    handler.fail_at = len(TABLES) + 2  # the second table of the next run
    with pytest.raises(WriteError) as info, DayWriter(root=str(root), day=DAY, filesystem=fs) as w:
        w.write("execution_instances", instances(9, tag="v2"))
        w.commit()
    assert "table=script_orders" in str(info.value) and "503 Slow Down" in str(info.value)
    assert published(root) == before  # the first table's copy was deleted again
    assert staging(root) == []

    handler.fail_at = None
    with DayWriter(root=str(root), day=DAY, filesystem=fs) as w:
        w.write("execution_instances", instances(9, tag="v2"))
        w.commit()
    (path,) = day_files(root, "execution_instances")
    assert pq.read_table(path).num_rows == 9


def test_rename_needs_a_local_disk(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    fs = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem("file")))
    with pytest.raises(ValueError, match="no rename"):
        DayWriter(root=str(tmp_path), day=DAY, filesystem=fs, object_store=False)


def test_a_file_uri_is_a_local_folder(tmp_path: Path) -> None:
    with DayWriter(root=(tmp_path / "wh").as_uri(), day=DAY) as w:
        w.commit()
    assert len(day_files(tmp_path / "wh", "script_orders")) == 1
