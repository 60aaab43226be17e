"""The product's one error root: every error it raises on purpose says its exit code.

    ProductError                    exit_code 1: an unexpected failure
    ├── UsageError                  2: bad configuration, arguments or target, found before
    │   │                              anything was changed
    │   ├── ConfigError             settings that cannot work (the client's own:
    │   │                              coc.errors.ConfigError, also a CocError)
    │   └── publish.ForeignFileError  COC_DUCKDB names a file coc-etl did not write
    ├── coc.errors.CocError         3: the COC API failed permanently (names ticket, batch,
    │                                  marker); its tree is drawn in ``pipelines/coc/errors.py``
    └── StorageError                4: writing the warehouse or building ``coc.duckdb`` failed
        ├── WriteError                  a day's Parquet: table, day, file
        │   ├── SchemaMismatchError     a batch whose columns, types or nulls do not fit
        │   ├── ShrinkRefusedError      the run would shrink a published day too much
        │   └── DayLockedError          another live run holds the day: who and since
        ├── locks.shared.LockBusyError   another run holds the day or the build
        ├── warehouse.publish.BuildError  ``coc.duckdb`` could not be built or published
        ├── StoreUnavailableError       the object store refused or did not answer
        └── coc.shared_rate.RedisUnavailableError  Redis (``COC_REDIS_URL``) away too long

``exit_code_of`` is the one place that turns any exception into an exit code, for the CLI
(``coc_etl/cli``) and the Dagster code location alike; an interrupt is 130 (SIGINT) or 143
(SIGTERM), decided where the signal is received. Messages are one line and name what failed
and where; they are built from values the run chose, never from credentials.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_API, EXIT_WRITE = 0, 1, 2, 3, 4
EXIT_INTERRUPTED, EXIT_PIPE_CLOSED, EXIT_TERMINATED = 130, 141, 143

#: libraries whose errors are storage failures when they reach a command: the local or object
#: store (``OSError``, which pyarrow's file systems raise too), DuckDB, Delta Lake
_STORAGE_LIBRARIES = ("duckdb", "deltalake")


class ProductError(Exception):
    """The root: an error the product raises on purpose, with the exit code it ends a run with."""

    exit_code: ClassVar[int] = EXIT_FAILED
    #: the words before the message on the command line (``coc-etl: <label>: <message>``)
    label: ClassVar[str] = "error"


class UsageError(ProductError):
    """Configuration, arguments or a target that cannot work; nothing was changed."""

    exit_code = EXIT_CONFIG
    label = "configuration error"


class ConfigError(UsageError):
    """Settings that cannot work: a variable, the warehouse, a target (exit 2)."""


class StorageError(ProductError):
    """Writing the warehouse or building ``coc.duckdb`` failed."""

    exit_code = EXIT_WRITE
    label = "write error"


class StoreUnavailableError(StorageError):
    """The object store refused the request or did not answer (keys, endpoint, outage)."""


def as_product_error(exc: BaseException) -> ProductError | None:
    """``exc`` as the product error it stands for, or None for a bug (let it show).

    The product's own errors stand for themselves. What the storage layers raise past the
    product's own handling (an ``OSError`` such as a read-only file system or a refused
    listing, a DuckDB error such as a full disk) is a ``StorageError`` (exit 4).
    """
    if isinstance(exc, ProductError):
        return exc
    library = type(exc).__module__.split(".")[0].lstrip("_")
    if isinstance(exc, OSError) or library in _STORAGE_LIBRARIES:
        kind = "" if isinstance(exc, OSError) else f"{library} {type(exc).__name__}: "
        error = StorageError(f"{kind}{one_line(exc)}")
        error.__cause__ = exc
        return error
    return None


def exit_code_of(exc: BaseException) -> int:
    """The exit code a run that ended with ``exc`` returns (1 for anything unexpected)."""
    error = as_product_error(exc)
    return EXIT_FAILED if error is None else error.exit_code


def one_line(exc: BaseException) -> str:
    """The first line of the exception's message, or its class name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


__all__ = [
    "EXIT_API",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIPE_CLOSED",
    "EXIT_TERMINATED",
    "EXIT_WRITE",
    "ProductError",
    "StorageError",
    "StoreUnavailableError",
    "UsageError",
    "as_product_error",
    "exit_code_of",
    "one_line",
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
