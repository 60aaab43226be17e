"""An ``s3://`` warehouse: its filesystem, DuckDB's access to it, and the checks before a run.

One S3 client for everything: pyarrow's ``S3FileSystem``, built from
:class:`~pipelines.settings.ObjectStoreSettings` (never from the environment here). The day
writer stages and publishes through it; DuckDB reads through the same client, wrapped as an
fsspec filesystem and registered on the connection (``register_s3``), because DuckDB's own
``httpfs`` extension is downloaded at first use and this product must work offline too. A
user who is online may ``LOAD httpfs`` and ``CREATE SECRET`` instead: the views name plain
``s3://`` URLs either way (README, "Object storage").

``check_access`` is the pre-flight of a run: before the COC API is asked anything, the
bucket must exist and take a write with the given credentials, so a missing bucket, wrong
credentials or an unreachable endpoint fail as a configuration error naming the variable,
with nothing written.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs

from pipelines.errors import ConfigError
from pipelines.settings import ObjectStoreSettings

if TYPE_CHECKING:
    import duckdb

__all__ = ["S3Location", "check_access", "register_s3", "s3_filesystem"]

_AWS_ERROR = re.compile(r"AWS Error ([A-Z_]+)")
_CREDENTIAL_ERRORS = {
    "ACCESS_DENIED",
    "SIGNATURE_DOES_NOT_MATCH",
    "INVALID_ACCESS_KEY_ID",
    "INVALID_CLIENT_TOKEN_ID",
    "UNRECOGNIZED_CLIENT",
    "MISSING_AUTHENTICATION_TOKEN",
    "EXPIRED_TOKEN",
    "INVALID_SIGNATURE",
}
_NETWORK_ERRORS = {"NETWORK_CONNECTION", "REQUEST_TIME_TOO_SKEWED", "UNKNOWN"}


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix`` as its parts; ``path`` is how pyarrow's S3 filesystem names it."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://"):
            raise ConfigError(f"COC_WAREHOUSE={uri!r} is not an s3:// URI")
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ConfigError(f"COC_WAREHOUSE={uri!r} names no bucket")
        return cls(bucket, prefix.strip("/"))

    @property
    def path(self) -> str:
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    @property
    def uri(self) -> str:
        return f"s3://{self.path}"


def s3_filesystem(settings: ObjectStoreSettings, *, attempts: int = 3) -> pafs.S3FileSystem:
    """pyarrow's S3 client for ``settings``; ``attempts`` bounds the SDK's retries."""
    kwargs: dict[str, object] = {
        # every call waits this long for a connection and for each answer, then is retried
        # (``attempts``), then fails: a hung store never hangs a run
        # (COC_S3_CONNECT_TIMEOUT_S, COC_S3_TIMEOUT_S)
        "connect_timeout": settings.connect_timeout_s,
        "request_timeout": settings.request_timeout_s,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=attempts),
        "force_virtual_addressing": settings.virtual_hosted and settings.endpoint_url is not None,
    }
    if settings.access_key_id is not None:
        kwargs["access_key"] = settings.access_key_id
        kwargs["secret_key"] = settings.secret_access_key
        if settings.session_token is not None:
            kwargs["session_token"] = settings.session_token
    if settings.region is not None:
        kwargs["region"] = settings.region
    if settings.endpoint_url is not None:
        scheme, _, rest = settings.endpoint_url.partition("://")
        kwargs["endpoint_override"] = rest.rstrip("/")
        kwargs["scheme"] = scheme
    return pafs.S3FileSystem(**kwargs)


@functools.cache
def _s3_files() -> type[Any]:
    """pyarrow's S3 client as the fsspec filesystem of ``s3://`` paths, for DuckDB (fsspec
    is imported here, not by the writer, which does not need it)."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    class S3Files(ArrowFSWrapper):
        protocol = ("s3",)
        root_marker = ""

    return S3Files


def register_s3(con: duckdb.DuckDBPyConnection, settings: ObjectStoreSettings) -> None:
    """Let ``con`` read ``s3://`` URLs through our S3 client (no httpfs extension needed)."""
    if "s3" not in con.list_filesystems():
        con.register_filesystem(_s3_files()(s3_filesystem(settings)))


def check_access(uri: str, settings: ObjectStoreSettings) -> None:
    """Raise a ``ConfigError`` naming the variable unless the warehouse at ``uri`` answers.

    Asks for the bucket, then lists the warehouse's prefix, with the run's credentials: a
    missing bucket, refused credentials or an unreachable endpoint are found before anything
    is fetched, and nothing is written (a key that may read but not write fails at the first
    staged object instead, exit 4, nothing published).
    """
    location = S3Location.parse(uri)
    fs = s3_filesystem(settings, attempts=2)
    step = "listing"
    try:
        if fs.get_file_info(location.bucket).type == pafs.FileType.NotFound:
            raise ConfigError(_missing_bucket(location, settings))
        fs.get_file_info(pafs.FileSelector(location.path, allow_not_found=True))
    except OSError as exc:
        raise ConfigError(_explain(exc, step, location, settings)) from None


def _missing_bucket(location: S3Location, settings: ObjectStoreSettings) -> str:
    where = settings.endpoint_url or "the default AWS endpoint"
    return (
        f"COC_WAREHOUSE={location.uri!r}: bucket {location.bucket!r} does not exist at "
        f"{where} (AWS_ENDPOINT_URL); create it or fix the URI"
    )


def _explain(exc: OSError, step: str, location: S3Location, settings: ObjectStoreSettings) -> str:
    """A one-line configuration error for an S3 failure: the variable to fix, no secret."""
    found = _AWS_ERROR.search(str(exc))
    code = found.group(1) if found else "UNKNOWN"
    where = settings.endpoint_url or "the default AWS endpoint"
    if code in ("NO_SUCH_BUCKET", "RESOURCE_NOT_FOUND"):
        return _missing_bucket(location, settings)
    if code in _CREDENTIAL_ERRORS:
        key = settings.access_key_id or "from the SDK's default chain"
        return (
            f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: {where} refused {step} "
            f"{location.uri} ({code}; access key {key})"
        )
    if code in _NETWORK_ERRORS:
        return (
            f"AWS_ENDPOINT_URL={where!r} cannot be reached while {step} {location.uri} ({code}); "
            "check the endpoint, AWS_REGION and the network"
        )
    return f"COC_WAREHOUSE={location.uri!r}: {step} failed at {where} ({code})"
