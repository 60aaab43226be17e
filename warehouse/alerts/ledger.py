"""What has been delivered: one record per channel, event and episode, seen by every machine.

``open_ledger`` gives, under a lock held while the notices are sent, the records of the
warehouse's deliveries:

- with ``COC_REDIS_URL`` (a deployment of several machines; ``deploy/``), a Redis hash
  ``coc:alerts:<hash of the warehouse>`` and a Redis lease (``shared_lock.SharedLease``),
  besides the file lock below: machines that each build their own ``coc.duckdb`` of one
  warehouse (``COC_WAREHOUSE``, the same URI everywhere) share them;
- else a JSON file beside ``coc.duckdb`` (``.coc.duckdb.alerts.json``), rewritten whole by a
  rename under an ``flock`` of ``.coc.duckdb.alerts-lock``: every run on the machine (or on
  machines sharing the folder) sees it.

A record is written right after its notice is delivered, so a run that stops half-way sends
only what is left next time; two runs at once take turns, and the second finds the first's
records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from typing import Any, Protocol

from pipelines.locks.shared import SharedLease, _hash


class Ledger(Protocol):
    def has(self, record: str) -> bool: ...

    def add(self, record: str) -> None: ...

    def starting(self, prefix: str) -> list[str]: ...


def record_name(channel: str, event: str, identity: str) -> str:
    return f"{channel}\x1f{event}\x1f{identity}"


class _FileLedger:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with open(path, encoding="utf-8") as f:
                self.records: set[str] = set(json.load(f))
        except FileNotFoundError:
            self.records = set()

    def has(self, record: str) -> bool:
        return record in self.records

    def starting(self, prefix: str) -> list[str]:
        return sorted(r for r in self.records if r.startswith(prefix))

    def add(self, record: str) -> None:
        self.records.add(record)
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(sorted(self.records), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class _RedisLedger:
    def __init__(self, client: Any, key: str) -> None:
        self.client, self.key = client, key

    def has(self, record: str) -> bool:
        return bool(self.client.hexists(self.key, record))

    def add(self, record: str) -> None:
        self.client.hset(self.key, record, "1")

    def starting(self, prefix: str) -> list[str]:
        names = (n.decode() for n in self.client.hkeys(self.key))
        return sorted(n for n in names if n.startswith(prefix))


@contextlib.contextmanager
def open_ledger(
    duckdb_path: str, *, warehouse: str, redis_url: str | None, run_id: str | None = None
) -> Iterator[Ledger]:
    """The delivery records of ``warehouse`` (its DuckDB file here is ``duckdb_path``), locked."""
    folder, name = os.path.split(os.path.abspath(duckdb_path))
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, f".{name}.alerts-lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if redis_url is None:
            yield _FileLedger(os.path.join(folder, f".{name}.alerts.json"))
            return
        import redis  # only deployments with COC_REDIS_URL need it

        tag = _hash(warehouse)
        lease = SharedLease(
            redis_url,
            key=f"coc:alerts-lock:{tag}",
            what=f"the alert delivery of {duckdb_path}",
            run_id=run_id,
        )
        with lease:
            client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
            try:
                yield _RedisLedger(client, f"coc:alerts:{tag}")
            finally:
                client.close()
    finally:
        os.close(fd)
