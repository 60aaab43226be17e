"""Locks every machine of a deployment sees: a Redis key with a lease, kept by a heartbeat.

Two things must never happen at once anywhere in the deployment: two runs writing one day,
and two builds of ``coc.duckdb``. On one machine the day writer's file lock and the build's
``flock`` suffice; with ``COC_REDIS_URL`` set, each also holds a :class:`SharedLease`:

1. ``acquire``: ``SET key <holder> NX PX ttl``. Busy: read the holder (run, pid, host,
   since), say once per holder that we wait (the log, and ``on_wait``: a Dagster run passes
   its event log), try again every ``poll_s`` until ``timeout_s``, then raise
   :class:`LockBusyError` naming what is locked and who holds it.
2. While held, a heartbeat thread renews the lease every ``ttl/3`` (only if the key still
   names us: a compare-and-renew script). A holder that dies, ``kill -9`` or a machine lost,
   stops renewing and its lease lapses after ``ttl_s``; the next run takes over then.
3. ``release``: delete the key if it still names us (compare-and-delete), stop the heartbeat.

Redis away for a moment (a restart, ``kill -9`` and back): ``acquire`` tries again for up to
``outage_s``, then raises :class:`~pipelines.coc.shared_rate.RedisUnavailableError` naming
``COC_REDIS_URL`` (never its password); the heartbeat keeps trying. A key that is gone when
the heartbeat reaches Redis again (a Redis restarted empty, or a lease that lapsed while
Redis was unreachable) is taken again if nobody else took it meanwhile (``SET NX`` inside the
script). Only a lease that another run holds by then is lost: the holder is told by ``lost``
and logs it; the run of the day then fails (``ingest.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pipelines.coc import shared_rate
from pipelines.coc.shared_rate import RedisUnavailableError, is_redis_outage, redacted_url
from pipelines.errors import ConfigError, StorageError

__all__ = ["LeaseLapsedError", "LockBusyError", "SharedLease", "build_lock", "day_lock_key"]

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 10.0
DEFAULT_TIMEOUT_S = 600.0
POLL_S = 0.2

#: 1 renewed, 2 taken again (the key was gone: Redis restarted, or the lease lapsed and
#: nobody took it), 0 lost (another holder)
_RENEW = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""
_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LockBusyError(StorageError):
    """Another live run holds the lock longer than we may wait."""

    def __init__(self, what: str, holder: dict[str, Any] | None, waited_s: float) -> None:
        self.what, self.holder, self.waited_s = what, holder, waited_s
        who = (
            f"run {holder.get('run_id')} (pid {holder.get('pid')} on {holder.get('host')}, "
            f"since {holder.get('since')})"
            if holder
            else "another run"
        )
        super().__init__(f"{what} is being written by {who}; gave up after {waited_s:.1f}s")


class LeaseLapsedError(LockBusyError):
    """The run held the lock, but its lease lapsed meanwhile: another run may have taken it."""

    def __init__(self, what: str) -> None:
        self.what, self.holder, self.waited_s = what, None, 0.0
        Exception.__init__(
            self,
            f"the lease of {what} lapsed mid-run (Redis unreachable for longer than its ttl?): "
            "another run may have written it meanwhile; run it again",
        )


def _hash(text: str) -> str:
    return hashlib.sha256(text.rstrip("/").encode()).hexdigest()[:16]


def day_lock_key(warehouse: str, day: str) -> str:
    """The shared lock of one day of the warehouse at ``warehouse`` (a path or URI)."""
    return f"coc:day:{_hash(warehouse)}:{day}"


class SharedLease:
    """A lock named ``key`` on the Redis at ``url``, held by ``run_id`` while alive."""

    def __init__(
        self,
        url: str,
        *,
        key: str,
        what: str,
        run_id: str | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[str], None] | None = None,
        outage_s: float | None = None,
    ) -> None:
        self.url, self.key, self.what = url, key, what
        self.ttl_s, self.timeout_s, self.poll_s = ttl_s, timeout_s, poll_s
        self._clock, self._sleep = clock, sleep
        self._on_wait = on_wait
        self.outage_s = shared_rate.OUTAGE_S if outage_s is None else outage_s
        self.holder = json.dumps(
            {
                "run_id": run_id or uuid.uuid4().hex[:12],
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
                "token": uuid.uuid4().hex,
            }
        )
        self._redis: Any = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.lost = False

    def __enter__(self) -> SharedLease:
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
        import redis  # only deployments with COC_REDIS_URL need it
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._redis = redis.Redis.from_url(  # its own retries off: ``_take`` rides outages
            self.url, socket_connect_timeout=5, socket_timeout=5, retry=Retry(NoBackoff(), 0)
        )
        try:
            self._take()
        except BaseException:
            self._redis.close()
            raise
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._renew, name=f"lease {self.key}", daemon=True
        )
        self._heartbeat.start()

    def _take(self) -> None:
        ttl_ms = int(self.ttl_s * 1000)
        started = self._clock()
        announced: bytes | None = None
        outage_since: float | None = None
        while True:
            try:
                if self._redis.set(self.key, self.holder, nx=True, px=ttl_ms):
                    break
                current = self._redis.get(self.key)
            except Exception as exc:
                if not type(exc).__module__.startswith("redis"):
                    raise
                outage_since = self._ride_out(exc, outage_since)
                continue
            outage_since = None
            holder = _parse(current)
            waited = self._clock() - started
            if waited >= self.timeout_s:
                raise LockBusyError(self.what, holder, waited)
            if current != announced:
                message = f"waiting for {_who(holder)} to finish {self.what}"
                log.warning("%s", message)
                if self._on_wait is not None:
                    self._on_wait(f"{message} (at most {self.timeout_s - waited:.0f}s more)")
                announced = current
            self._sleep(min(self.poll_s, self.timeout_s - waited))
        if announced is not None and self._on_wait is not None:
            self._on_wait(f"took {self.what} after waiting {self._clock() - started:.1f}s")

    def _ride_out(self, exc: Exception, since: float | None) -> float:
        """Redis failed a command: wait a moment and say when the outage began, or give up
        (``RedisUnavailableError``) once it has lasted ``outage_s``; not an outage: a
        ``ConfigError`` naming the variable."""
        url = redacted_url(self.url)
        if not is_redis_outage(exc):
            raise ConfigError(
                f"COC_REDIS_URL {url}: cannot take the lock of {self.what} ({type(exc).__name__})"
            ) from None
        now = self._clock()
        if since is None:
            log.warning(
                "COC_REDIS_URL %s: Redis unreachable (%s) taking the lock of %s; "
                "trying again for up to %gs",
                url,
                type(exc).__name__,
                self.what,
                self.outage_s,
            )
            since = now
        if now - since >= self.outage_s:
            raise RedisUnavailableError(
                f"COC_REDIS_URL {url}: Redis unreachable for {now - since:.0f}s "
                f"({type(exc).__name__}) taking the lock of {self.what}"
            ) from None
        self._sleep(min(1.0, self.outage_s - (now - since)))
        return since

    def _renew(self) -> None:
        ttl_ms = int(self.ttl_s * 1000)
        while not self._stop.wait(self.ttl_s / 3):
            try:
                renewed = self._redis.eval(_RENEW, 1, self.key, self.holder, ttl_ms)
            except Exception as exc:  # Redis away for a moment: try again next beat
                log.warning("could not renew the lease of %s: %s", self.what, type(exc).__name__)
                continue
            if renewed == 2:
                log.warning("the lease of %s was gone (Redis restarted?): taken again", self.what)
            elif not renewed:
                self.lost = True
                log.error("the lease of %s lapsed: another run may take it", self.what)
                return

    def release(self) -> None:
        if self._heartbeat is None:
            return
        self._stop.set()
        self._heartbeat.join()
        self._heartbeat = None
        try:
            self._redis.eval(_DELETE, 1, self.key, self.holder)
        except Exception as exc:  # the lease lapses on its own
            log.warning("could not release %s: %s", self.what, type(exc).__name__)
        finally:
            self._redis.close()


def _parse(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or b"null")
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    value.pop("token", None)
    return value


def _who(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another run"
    return f"run {holder.get('run_id')} (pid {holder.get('pid')} on {holder.get('host')})"


@contextlib.contextmanager
def build_lock(
    duckdb_path: str,
    *,
    redis_url: str | None,
    run_id: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Iterator[None]:
    """Held around a build of ``coc.duckdb``: builds follow one another, never overlap.

    Each build reads every published day when it starts and replaces the file whole, so the
    last build to finish has seen every day published before it began: builds in a row, one
    after each run that changed data, leave the file current. A ``flock`` beside the file
    (``.coc.duckdb.build-lock``) orders the builds of one machine; with ``redis_url`` a lease
    orders those of all.
    """
    folder, name = os.path.split(os.path.abspath(duckdb_path))
    lock_path = os.path.join(folder, f".{name}.build-lock")  # hidden: not a coc.duckdb* file
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if redis_url is None:
            yield
            return
        lease = SharedLease(
            redis_url,
            key=f"coc:build:{_hash(os.path.abspath(duckdb_path))}",
            what=f"the build of {duckdb_path}",
            run_id=run_id,
            timeout_s=timeout_s,
        )
        with lease:
            yield
    finally:
        os.close(fd)
