"""One run per day: a lock file that a day's writer holds for its whole life.

Where the lock file is::

    <root>/_staging/dt=YYYY-MM-DD/.lock                          a local warehouse
    <lock_dir>/<sha256 of the warehouse URI>/dt=YYYY-MM-DD.lock    object storage

The protocol of a :class:`DayLock`:

1. ``acquire``: open (create) the file and take ``flock(LOCK_EX | LOCK_NB)`` on it.
   - Busy: read who holds it (the holder wrote its run id, pid, host and start time into
     the file), log ``waiting for run X ... of DAY`` once per holder, and try again every
     ``poll_s`` until ``timeout_s`` has passed; then raise :class:`DayLockedError` naming the
     day and the holder. ``timeout_s=0`` fails at once.
   - Taken: check that the path still names the file we locked (same device and inode); a
     holder that released it in between unlinked it, so we start over on a fresh file. Then
     write who we are into it.
2. ``release``: unlink the file while still holding it, then close it. A waiter that had
   opened the unlinked file finds it no longer at the path after taking it, and starts over.

The kernel releases a ``flock`` when its process dies, ``kill -9`` included, and no sooner:
a lock that can be taken proves every earlier holder dead or done. That is what lets the
writer delete the staging that other runs of the day left (their debris, never a live run's).
A dead holder leaves its lock file behind; the next holder takes it over and removes it.

``flock`` belongs to an open file description: two writers of one day in one process exclude
each other as two processes do. The descriptor is not inherited across ``exec``; a child made
by ``fork`` without ``exec`` would share it, so writers do not fork.

On object storage there is no ``flock``: the lock lives in a local folder keyed by the
warehouse URI, and so excludes the runs of one machine only. Excluding the runs of several
machines is issue 10's (the distributed design).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from types import TracebackType

from pipelines.errors import DayLockedError, LockHolder

__all__ = ["DEFAULT_LOCK_TIMEOUT_S", "DayLock", "default_lock_dir", "object_store_lock_path"]

log = logging.getLogger(__name__)

#: how long a second run of a day waits for the first by default, in seconds; 0 = fail at once
DEFAULT_LOCK_TIMEOUT_S = 600.0
POLL_S = 0.2
LOCK_FILE = ".lock"


def default_lock_dir() -> str:
    """Where object-storage warehouses keep their day locks: one folder per local user."""
    return os.path.join(tempfile.gettempdir(), f"coc-etl-locks-{os.getuid()}")


def object_store_lock_path(location: str, day: dt.date, lock_dir: str | None = None) -> str:
    """The local lock file of ``day`` of the warehouse at ``location`` (a URI)."""
    key = hashlib.sha256(location.rstrip("/").encode()).hexdigest()[:16]
    return os.path.join(lock_dir or default_lock_dir(), key, f"dt={day.isoformat()}.lock")


class DayLock:
    """The lock of one day, held by one run (``run_id``) from ``acquire`` to ``release``.

    ``clock`` and ``sleep`` are the waiting's time; tests pass fake ones.
    """

    def __init__(
        self,
        path: str,
        *,
        day: dt.date,
        run_id: str,
        timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not timeout_s >= 0:  # also refuses nan
            raise ValueError(f"the day lock's timeout must be >= 0 seconds, got {timeout_s}")
        self.path, self.day, self.run_id = path, day, run_id
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self._clock, self._sleep = clock, sleep
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DayLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, waiting up to ``timeout_s``; ``DayLockedError`` if it stays busy."""
        if self._fd is not None:
            return
        started = self._clock()
        waiting = False
        announced: LockHolder | None = None
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
            except BaseException:
                os.close(fd)
                raise
            else:
                if self._take(fd):
                    if waiting:
                        waited = self._clock() - started
                        log.info("%s is ours after waiting %.1fs", self.day, waited)
                    return
                continue  # released and unlinked meanwhile: start over on a fresh file
            waited = self._clock() - started
            if waited >= self.timeout_s:
                raise DayLockedError(
                    day=self.day,
                    path=self.path,
                    holder=holder or self._holder_soon(),
                    waited_s=round(waited, 1) if self.timeout_s else 0,
                )
            if not waiting or holder != announced:
                log.warning(
                    "waiting for %s to finish %s (at most %gs more; lock %s)",
                    holder or "another run",
                    self.day,
                    self.timeout_s - waited,
                    self.path,
                )
                waiting, announced = True, holder
            self._sleep(min(self.poll_s, self.timeout_s - waited))

    def release(self) -> None:
        """Unlink the lock file while holding it, then let go. Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _names(self.path, fd):
                os.unlink(self.path)
        except OSError as exc:  # the next holder takes the file over
            log.warning("could not remove the lock file %s: %s", self.path, exc)
        finally:
            os.close(fd)

    def _open(self) -> int:
        while True:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:  # a releasing holder removed the folder meanwhile
                continue

    def _take(self, fd: int) -> bool:
        """Having flocked ``fd``: keep it if it is still the file at the path, and sign it."""
        try:
            if not _names(self.path, fd):
                os.close(fd)
                return False
            me = {
                "run_id": self.run_id,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def _holder_soon(self) -> LockHolder | None:
        """Who holds the lock, given a moment to sign it (it takes, then writes)."""
        for _ in range(10):
            with contextlib.suppress(OSError):
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    holder = _read_holder(fd)
                finally:
                    os.close(fd)
                if holder is not None:
                    return holder
            self._sleep(0.02)
        return None


def _names(path: str, fd: int) -> bool:
    """Whether ``path`` is the file open as ``fd`` (not unlinked, not replaced)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _read_holder(fd: int) -> LockHolder | None:
    """Who signed the lock file open as ``fd``; None while unsigned (or not ours)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"null")
        return LockHolder(
            run_id=str(data["run_id"]),
            pid=int(data["pid"]),
            host=str(data["host"]),
            since=str(data["since"]),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None
