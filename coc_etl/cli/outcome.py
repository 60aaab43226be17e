"""What a ``coc-etl`` command ends with: its exit code, and the words for the days it published.

Exit codes: 0 success, 1 unexpected failure, 2 bad configuration or arguments (found before
any request), 3 the COC API failed permanently (the message names ticket, batch and marker),
4 writing the warehouse failed, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from pipelines.errors import (
    EXIT_API,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_WRITE,
    StorageError,
)

__all__ = [
    "EXIT_API",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_WRITE",
    "MartsStaleError",
    "days_text",
]


class MartsStaleError(StorageError):
    """Days were published but ``coc.duckdb`` could not be rebuilt over them."""


def days_text(days: Sequence[date]) -> str:
    """``days`` for a message: each of up to three, else the count and the first and last."""
    if not days:
        return "no day"
    if len(days) <= 3:
        return ", ".join(d.isoformat() for d in days)
    return f"{len(days)} days, {days[0]} to {days[-1]}"
