"""Every error that writing a day of Parquet raises, in one tree.

    WriteError              writing, publishing or cleaning a day failed: table, day, path
    ├── SchemaMismatchError a batch whose columns, types or nulls do not fit its table
    ├── ShrinkRefusedError  the run would shrink a published day past the allowed share
    └── DayLockedError      another live run holds the day: who (run, pid, host, since)

They are ``StorageError``s of the product's root (``pipelines/errors.py``): exit code 4.
Messages name the table, the day and the file, and never a credential: they are built from
paths and values of the run only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pipelines.errors import StorageError

__all__ = [
    "DayLockedError",
    "LockHolder",
    "SchemaMismatchError",
    "ShrinkRefusedError",
    "WriteError",
]


class WriteError(StorageError):
    """Writing or publishing a day failed; names the table, the day and the file."""

    def __init__(
        self, message: str, *, table: str | None = None, day: dt.date, path: str | None = None
    ) -> None:
        self.message, self.table, self.day, self.path = message, table, day, path
        super().__init__(message)

    def __str__(self) -> str:
        where = [f"table={self.table}"] if self.table else []
        where.append(f"day={self.day.isoformat()}")
        if self.path:
            where.append(f"path={self.path}")
        return f"{self.message} [{' '.join(where)}]"


class SchemaMismatchError(WriteError, ValueError):
    """A batch whose columns, types or nulls do not fit its table's schema."""


class ShrinkRefusedError(WriteError):
    """A run would publish a day with far fewer instances than the published one: refused,
    the published day stays (an API that lists no tickets after a permission change must
    not wipe the days it re-reads)."""

    def __init__(self, *, day: dt.date, published: int, new: int, limit: float) -> None:
        self.published, self.new, self.limit = published, new, limit
        message = (
            f"refusing to publish day {day}: it would shrink from {published} published "
            f"instances to {new} (more than {limit:.0%} fewer"
            f"{', to zero' if new == 0 else ''}); set COC_ALLOW_SHRINK=1 (or pass "
            "--allow-shrink) to publish it on purpose"
        )
        super().__init__(message, table="execution_instances", day=day)


@dataclass(frozen=True, kw_only=True)
class LockHolder:
    """The run that holds a day's lock, as it wrote itself into the lock file."""

    run_id: str
    pid: int
    host: str
    since: str  # ISO 8601, UTC

    def __str__(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host}, since {self.since})"


class DayLockedError(WriteError):
    """Another live run writes the same day; this one gave up after ``waited_s`` seconds."""

    def __init__(
        self,
        *,
        day: dt.date,
        path: str,
        holder: LockHolder | None,
        waited_s: float,
    ) -> None:
        self.holder, self.waited_s = holder, waited_s
        who = str(holder) if holder else "a run that has not said who it is yet"
        if waited_s > 0:
            message = f"day {day} is still being written by {who} after waiting {waited_s:g}s"
        else:
            message = f"day {day} is being written by {who}; not waiting for it"
        super().__init__(message, day=day, path=path)
