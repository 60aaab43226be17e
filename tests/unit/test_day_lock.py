"""DayLock: waiting for the holder with a fake clock, giving up naming it, releasing cleanly.

Two locks of the same path in one process exclude each other as two processes do (``flock``
belongs to an open file description), so the holder here is a second ``DayLock``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.errors import DayLockedError, WriteError
from pipelines.locks.day import DayLock, object_store_lock_path

DAY = dt.date(2026, 11, 20)


class FakeTime:
    """A clock that only ``sleep`` moves; ``on_sleep`` runs at each call, by call number."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.now, self.sleeps = 1000.0, []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


def lock(path: Path, run_id: str, **kwargs: object) -> DayLock:
    return DayLock(str(path), day=DAY, run_id=run_id, **kwargs)  # type: ignore[arg-type]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "_staging" / f"dt={DAY}" / ".lock"


def test_the_holder_signs_the_lock_file_and_removes_it_on_release(path: Path) -> None:
    with lock(path, "run-a") as held:
        assert held.held
        signed = json.loads(path.read_text())
        assert signed["run_id"] == "run-a" and signed["pid"] == os.getpid()
        assert signed["host"] == socket.gethostname()
        since = dt.datetime.fromisoformat(signed["since"])
        assert abs(dt.datetime.now(dt.UTC) - since) < dt.timedelta(minutes=1)
    assert not held.held
    assert not path.exists()
    held.release()  # twice is harmless


def test_a_second_lock_gives_up_after_its_timeout_naming_the_holder(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipelines.locks.day")
    fake = FakeTime()
    with lock(path, "run-a"):
        waiter = lock(path, "run-b", timeout_s=5, poll_s=1, clock=fake.clock, sleep=fake.sleep)
        with pytest.raises(DayLockedError) as info:
            waiter.acquire()
    assert fake.sleeps == [1, 1, 1, 1, 1]
    assert info.value.waited_s == 5 and info.value.holder is not None
    assert info.value.holder.run_id == "run-a" and info.value.holder.pid == os.getpid()
    assert str(info.value).startswith(
        f"day {DAY} is still being written by run run-a (pid {os.getpid()} on "
        f"{socket.gethostname()}, since "
    )
    assert f"after waiting 5s [day={DAY} path={path}]" in str(info.value)
    assert isinstance(info.value, WriteError)
    waiting = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert len(waiting) == 1  # said once, not at every poll
    assert waiting[0].startswith(f"waiting for run run-a (pid {os.getpid()}")
    assert f"to finish {DAY} (at most 5s more" in waiting[0]
    assert not waiter.held


def test_a_zero_timeout_fails_at_once(path: Path) -> None:
    fake = FakeTime()
    with lock(path, "run-a"):
        waiter = lock(path, "run-b", timeout_s=0, clock=fake.clock, sleep=fake.sleep)
        with pytest.raises(DayLockedError, match=f"day {DAY} is being written by run run-a"):
            waiter.acquire()
    assert fake.sleeps == []


def test_a_waiting_lock_takes_the_day_once_the_holder_lets_go(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipelines.locks.day")
    holder = lock(path, "run-a")
    holder.acquire()
    fake = FakeTime(on_sleep=lambda n: n == 3 and holder.release())
    waiter = lock(path, "run-b", timeout_s=60, poll_s=0.5, clock=fake.clock, sleep=fake.sleep)
    waiter.acquire()
    try:
        assert waiter.held and fake.sleeps == [0.5, 0.5, 0.5]
        assert json.loads(path.read_text())["run_id"] == "run-b"  # a fresh file, signed by b
        assert f"{DAY} is ours after waiting 1.5s" in caplog.text
    finally:
        waiter.release()


def test_a_new_holder_is_announced_again(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pipelines.locks.day")
    first, second = lock(path, "run-a"), lock(path, "run-c")
    first.acquire()

    def hand_over(n: int) -> None:
        if n == 2:  # run-a finishes and run-c takes the day before we look again
            first.release()
            second.acquire()

    fake = FakeTime(on_sleep=hand_over)
    waiter = lock(path, "run-b", timeout_s=4, poll_s=1, clock=fake.clock, sleep=fake.sleep)
    with pytest.raises(DayLockedError, match="run run-c"):
        waiter.acquire()
    second.release()
    waiting = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert [m.split(" (")[0] for m in waiting] == ["waiting for run run-a", "waiting for run run-c"]


def test_an_interrupted_wait_holds_nothing_and_leaks_no_descriptor(path: Path) -> None:
    def interrupt(n: int) -> None:
        raise KeyboardInterrupt

    with lock(path, "run-a"):
        before = open_fds()
        fake = FakeTime(on_sleep=interrupt)
        waiter = lock(path, "run-b", timeout_s=60, clock=fake.clock, sleep=fake.sleep)
        with pytest.raises(KeyboardInterrupt):
            waiter.acquire()
        assert not waiter.held and open_fds() == before


def test_an_unsigned_lock_file_is_a_free_lock(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text('{"run_id": "dead-run", "pid": 1, "host": "gone", "since": "x"}')
    with lock(path, "run-a", timeout_s=0):  # nobody holds the flock: the writer is dead
        assert json.loads(path.read_text())["run_id"] == "run-a"
    assert not path.exists()


@pytest.mark.parametrize("timeout", [-1.0, float("nan")])
def test_a_negative_or_nan_timeout_is_refused(path: Path, timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout must be >= 0 seconds"):
        lock(path, "run-a", timeout_s=timeout)


def test_object_store_locks_are_keyed_by_the_uri(tmp_path: Path) -> None:
    a = object_store_lock_path("s3://bucket/coc", DAY, str(tmp_path))
    assert a == object_store_lock_path("s3://bucket/coc/", DAY, str(tmp_path))
    assert a != object_store_lock_path("s3://bucket/other", DAY, str(tmp_path))
    assert a != object_store_lock_path("s3://bucket/coc", DAY + dt.timedelta(days=1), str(tmp_path))
    assert a.startswith(str(tmp_path)) and a.endswith(f"dt={DAY}.lock")
