"""Every error the COC client raises, in one tree under the product's root (``errors.py``).

    CocError                      base: where it happened (ticket, batch, marker, path); exit 3
    ├── ConfigError               settings that cannot work (no endpoint, http:// off loopback);
    │                             also a ``UsageError``: exit 2
    ├── RequestValidationError    a parameter out of the documented range; nothing was sent
    ├── TransportError            reset, refused or timed out, after the retry budget
    ├── ApiError                  a non-2xx answer: ``status``, ``error_code``, ``error_msg``
    │   ├── BadRequestError       400: never retried
    │   ├── AuthenticationError   401: never retried
    │   ├── PermissionDeniedError 403: never retried
    │   ├── NotFoundError         404: never retried
    │   ├── RateLimitedError      429 after the retry budget
    │   └── ServerError           5xx after the retry budget
    ├── ResponseError             a 2xx body that is not the documented JSON (after retries)
    └── PagingError               a stuck marker, ids going backwards, a total that changes

``retry.is_retriable`` is the one place that decides which of these are worth another attempt.
Messages name the ticket, batch and marker and never a credential: errors are built from
values we choose, never from request objects or headers.
"""

from __future__ import annotations

from typing import TypedDict

from pipelines import errors
from pipelines.errors import EXIT_API, ProductError


class Where(TypedDict, total=False):
    """Where in the walk an error happened, as keyword arguments for any CocError."""

    ticket: str | None
    batch: int | None
    marker: int | None


class CocError(ProductError):
    """Base class: a message plus the coordinates of the failing call."""

    exit_code = EXIT_API
    label = "COC API error"

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        ticket: str | None = None,
        batch: int | None = None,
        marker: int | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.ticket = ticket
        self.batch = batch
        self.marker = marker
        super().__init__(message)

    def where(self) -> str:
        parts = []
        if self.ticket is not None:
            parts.append(f"ticket={self.ticket}")
        if self.batch is not None:
            parts.append(f"batch={self.batch}")
        if self.marker is not None:
            parts.append(f"marker={self.marker}")
        if self.path is not None:
            parts.append(f"path={self.path}")
        return " ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        return f"{self.message} [{where}]" if where else self.message


class ConfigError(errors.ConfigError, CocError):
    """Settings that cannot work (exit 2, as every ``UsageError``)."""


class RequestValidationError(CocError):
    """A request parameter outside the documented range; no request was sent."""


class TransportError(CocError):
    """The connection failed (reset, refused, time-out) and the retry budget ran out."""


class ApiError(CocError):
    """The server answered with a non-2xx status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_code: str | None = None,
        error_msg: str | None = None,
        retry_after: float | None = None,
        **where: object,
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.retry_after = retry_after
        super().__init__(message, **where)  # type: ignore[arg-type]


class BadRequestError(ApiError):
    """HTTP 400."""


class AuthenticationError(ApiError):
    """HTTP 401."""


class PermissionDeniedError(ApiError):
    """HTTP 403."""


class NotFoundError(ApiError):
    """HTTP 404."""


class RateLimitedError(ApiError):
    """HTTP 429 that outlasted the retry budget."""


class ServerError(ApiError):
    """HTTP 5xx that outlasted the retry budget."""


class ResponseError(CocError):
    """A 2xx body that is not the documented JSON."""


class PagingError(CocError):
    """Paging went wrong: stuck marker, ids out of order, total changed."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitedError,
}


def api_error_class(status: int) -> type[ApiError]:
    """The ApiError subclass for an HTTP status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return ApiError
