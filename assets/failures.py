"""What a failed step tells Dagster: the line ``coc-etl`` prints, and its exit code.

``reported_failures`` wraps an asset's body. An error of the product's root, or one that the
root stands for (``pipelines.errors.as_product_error``: a storage layer's ``OSError`` or
DuckDB error), becomes a ``dagster.Failure`` whose description is the one line the CLI prints
for it, with the CLI's exit code and the error's class as metadata, and no chained
traceback. Anything else (a bug) propagates with its traceback. The mapping itself lives in
``pipelines/errors.py``, shared with the CLI.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

from dagster import Failure, MetadataValue

from pipelines.errors import as_product_error, one_line

P = ParamSpec("P")
T = TypeVar("T")


def reported_failures(step: Callable[P, Iterator[T]]) -> Callable[P, Iterator[T]]:
    """The asset function ``step``, its product errors turned into ``dagster.Failure``."""

    @functools.wraps(step)
    def reporting(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        try:
            yield from step(*args, **kwargs)
        except Exception as exc:
            error = as_product_error(exc)
            if error is None:
                raise
            raise Failure(
                description=f"{error.label}: {one_line(error)}",
                metadata={
                    "exit_code": error.exit_code,
                    "error": MetadataValue.text(type(exc).__name__),
                },
            ) from None

    return reporting
