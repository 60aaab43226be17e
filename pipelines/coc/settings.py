"""How to reach and call the COC API: one keyword-only value object, defaults at module level.

The client reads nothing else: where the values come from (``COC_*`` variables, a Dagster
resource, a test) is the caller's business. ``ClientSettings.__repr__`` hides the secret key
and the token, so a settings object can be logged or shown safely.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pipelines.coc.errors import ConfigError

DEFAULT_MAX_RPS = 50.0
#: requests in flight (how it was chosen: the README's Performance section)
DEFAULT_CONCURRENCY = 16
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_PAGE_LIMIT = 50
DEFAULT_LIST_LIMIT = 50
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_RETRY_BUDGET_S = 600.0


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    """How to reach and call the COC API."""

    endpoint: str
    ak: str | None = None
    sk: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    project_id: str | None = None
    ca_bundle: str | None = None
    #: requests per second for the whole run; ``None`` means no cap (adaptive only)
    max_rps: float | None = DEFAULT_MAX_RPS
    concurrency: int = DEFAULT_CONCURRENCY
    #: lower the rate after a 429 and creep back up (AIMD), never above ``max_rps``
    adaptive: bool = True
    timeout_s: float = DEFAULT_TIMEOUT_S
    page_limit: int = DEFAULT_PAGE_LIMIT
    list_limit: int = DEFAULT_LIST_LIMIT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_budget_s: float = DEFAULT_RETRY_BUDGET_S
    #: ``aiohttp`` (the faster engine, see ``pipelines/coc/transport.py``) or httpx's own
    transport: str = "aiohttp"
    #: Redis shared by every run of a deployment: ``max_rps`` becomes one budget for all of
    #: them (``pipelines/coc/shared_rate.py``); ``None`` = this run's own pacing only
    redis_url: str | None = None

    def __post_init__(self) -> None:
        check_endpoint(self.endpoint)
        if (self.ak is None) != (self.sk is None):
            raise ConfigError("COC_AK and COC_SK must be set together")
        if self.concurrency < 1:
            raise ConfigError(f"COC_CONCURRENCY must be >= 1, got {self.concurrency}")
        if self.max_rps is not None and self.max_rps <= 0:
            raise ConfigError(f"COC_MAX_RPS must be > 0, got {self.max_rps}")
        if self.transport not in ("aiohttp", "httpx"):
            raise ConfigError(f"transport must be 'aiohttp' or 'httpx', got {self.transport!r}")
        if not 1 <= self.page_limit <= 50:
            raise ConfigError(f"page limit must be within 1..50, got {self.page_limit}")

    def __repr__(self) -> str:  # says whether a secret is set, never what it is
        from pipelines.coc.shared_rate import redacted_url  # (it loads asyncio: not for --help)

        shown = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("sk", "token", "redis_url")
        }
        shown["redis_url"] = redacted_url(self.redis_url) if self.redis_url else None
        shown["sk"] = "<hidden>" if self.sk else None
        shown["token"] = "<hidden>" if self.token else None
        return "ClientSettings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def auth_kind(self) -> str:
        return "aksk" if self.ak else "token" if self.token else "none"


def is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: str) -> None:
    """HTTPS anywhere, plain HTTP only to a loopback host."""
    if not endpoint:
        raise ConfigError("COC_ENDPOINT is required (the base URL of the COC API)")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"COC_ENDPOINT must be an http(s) URL, got {endpoint!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"COC_ENDPOINT {endpoint!r} uses plain http:// to a non-loopback host; "
            "use https:// (credentials must never cross a network in clear text)"
        )
