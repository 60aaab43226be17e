"""The product's one error root: every error it raises on purpose says its exit code.

    ProductError                    exit_code 1: an unexpected failure
    ├── UsageError                  2: bad configuration, arguments or target, found before
    │   │                              anything was changed
    │   ├── coc.errors.ConfigError  settings of the COC client that cannot work
    │   └── publish.ForeignFileError  COC_DUCKDB names a file coc-etl did not write
    ├── coc.errors.CocError         3: the COC API failed permanently (names ticket, batch,
    │                                  marker); its tree is drawn in ``pipelines/coc/errors.py``
    └── StorageError                4: writing the warehouse or building ``coc.duckdb`` failed
        ├── write_errors.WriteError     a day's Parquet: table, day, file
        ├── shared_lock.LockBusyError   another run holds the day or the build
        ├── warehouse.publish.BuildError  ``coc.duckdb`` could not be built or published
        ├── StoreUnavailableError       the object store refused or did not answer
        └── coc.shared_rate.RedisUnavailableError  Redis (``COC_REDIS_URL``) away too long

``exit_code_of`` is the one place that turns any exception into an exit code, for the CLI
(``pipelines/cli``) and the Dagster code location alike; an interrupt is 130 (SIGINT) or 143
(SIGTERM), decided where the signal is received. Messages are one line and name what failed
and where; they are built from values the run chose, never from credentials.
"""

from __future__ import annotations

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
