"""Every environment variable of the product, declared once, and the one read of the environment.

A ``Variable`` says its name, type, bounds or choices, default, whether it is a secret, one
line of help, and which commands read it. From this table come the settings objects
(``pipelines/settings.py``), the Dagster resources' typed fields (``assets/resources.py``),
each ``coc-etl`` command's ``--help`` and the README's configuration table
(``python -m pipelines.variables --markdown``; ``--write README.md`` rewrites it in place).

``process_env()`` is the only place the product reads ``os.environ``; everything else is
handed a mapping (tests hand their own). Nothing here loads more than the standard library.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.coc.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RPS,
    DEFAULT_RETRY_BUDGET_S,
)
from pipelines.errors import ConfigError
from pipelines.locks.day import DEFAULT_LOCK_TIMEOUT_S

Value = str | int | float | bool | None

#: how long a data file that a commit superseded stays before the vacuum may remove it: longer
#: than any reader of a replaced ``coc.duckdb`` lives, and the reach of ``report --as-of``
DEFAULT_VACUUM_RETENTION_H = 168.0
MIN_VACUUM_RETENTION_H, MAX_VACUUM_RETENTION_H = 1.0, 24 * 366.0
#: the share of a published day's instances a run may drop before it is refused
DEFAULT_MAX_SHRINK = 0.5
#: Above ``MAX_CONCURRENCY`` requests in flight only cost memory: the gate paces them anyway.
MAX_CONCURRENCY = 256
#: ``COC_MAX_RPS`` below 1 request/s would stretch a day over hours; above, no API allows it
MIN_MAX_RPS, MAX_MAX_RPS = 1.0, 10_000.0
MAX_ATTEMPTS_LIMIT = 100
MIN_RETRY_BUDGET_S, MAX_RETRY_BUDGET_S = 1.0, 86_400.0
DEFAULT_LOOKBACK_DAYS = 3
MAX_LOOKBACK_DAYS = 90
MAX_DAY_LOCK_TIMEOUT_S = 86_400.0
MAX_ARCHIVE_RETENTION_DAYS = 36_500
MAX_BACKFILL_DAYS_PER_RUN = 3_660
URL_STYLES = ("path", "vhost")
CONDITIONAL_PUT = ("etag", "none")
EXECUTORS = ("in_process", "multiprocess")
#: the first day a run may ask for (the daily partitions start here too)
FIRST_DAY = date(2024, 1, 1)

#: the commands that read variables: ``coc-etl``'s, and ``dagster`` (the code location)
INGEST, REPLAY, WAREHOUSE, MIGRATE = "ingest", "replay", "warehouse", "migrate"
REPARTITION, REPORT, DASHBOARD, DAGSTER = "repartition", "report", "dashboard", "dagster"
COMMANDS = (INGEST, REPLAY, WAREHOUSE, MIGRATE, REPARTITION, REPORT, DASHBOARD, DAGSTER)
#: every command that builds the warehouse's settings reads all of them
_WAREHOUSE_READERS = (INGEST, REPLAY, WAREHOUSE, MIGRATE, REPARTITION, REPORT, DASHBOARD, DAGSTER)
_CLIENT_READERS = (INGEST, DAGSTER)
#: the commands that rebuild ``coc.duckdb`` deliver the alerts due after it
_ALERT_READERS = (INGEST, REPLAY, WAREHOUSE, REPARTITION, DAGSTER)
#: the dashboard reads object storage with these alone (``warehouse/dashboard/app.py``)
_S3_READERS = _WAREHOUSE_READERS


@cache
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (parsed once per process), else a ``ConfigError`` naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"COC_TIMEZONE={name!r} is not a known IANA time zone") from exc


@dataclass(frozen=True, kw_only=True)
class Variable:
    """One environment variable: what it holds, its bounds, its default, who reads it."""

    name: str
    #: one line, for ``--help`` and the README (bounds, choices and default are added)
    help: str
    #: ``str``, ``int``, ``float`` or ``bool`` (``1``/``0``, ``true``/``false``, ...)
    kind: type = str
    #: the value when unset (``None``: unset means none)
    default: Value = None
    #: the default as the README says it, where the value alone does not say it
    shown_default: str = ""
    low: float | None = None
    high: float | None = None
    unit: str = ""
    choices: tuple[str, ...] = ()
    #: values that mean "none" (no cap, keep every day); a number that is zero among them
    off: tuple[str, ...] = ()
    secret: bool = False
    commands: tuple[str, ...] = ()
    #: read instead when this one is unset (``AWS_REGION`` falls back to ``AWS_DEFAULT_REGION``)
    fallback: str | None = None
    #: a further check of a text value (``zone`` for ``COC_TIMEZONE``)
    check: Callable[[str], object] | None = None
    #: the name of the Dagster resource's field (default: the name, lower case, no ``COC_``)
    field_name: str = ""

    @property
    def field(self) -> str:
        return self.field_name or self.name.lower().removeprefix("coc_")

    def is_set(self, env: Mapping[str, str]) -> bool:
        return bool((env.get(self.name) or "").strip())

    def read(self, env: Mapping[str, str]) -> Value:
        """The value in ``env`` (its fallback's when unset), checked; the default when unset."""
        raw = (env.get(self.name) or "").strip()
        if not raw and self.fallback:
            raw = (env.get(self.fallback) or "").strip()
        return self.parse(raw)

    def parse(self, raw: str) -> Value:
        """A value written as text, checked; a one-line ``ConfigError`` naming the variable."""
        text = raw.strip()
        if not text:
            return self.default
        if text.lower() in self.off:
            return None
        if self.kind is bool:
            return _flag(self.name, text)
        if self.kind is str:
            if self.choices:
                text = text.lower()
                if text not in self.choices:
                    raise ConfigError(
                        f"{self.name} must be one of {', '.join(self.choices)}, got {text!r}"
                    )
            if self.check is not None:
                self.check(text)
            return text
        what = "an integer" if self.kind is int else "a number"
        try:
            number = self.kind(text)
        except ValueError:
            raise ConfigError(f"{self.name} must be {what}, got {text!r}") from None
        return self._bounded(number, text)

    def accept(self, value: Value) -> Value:
        """A value given typed (a resource's field): checked as ``parse`` checks text."""
        if value is None or isinstance(value, str):
            return self.parse(value or "")
        if self.kind is bool:
            return bool(value)
        if self.kind in (int, float):
            if isinstance(value, float) and self.kind is int and not value.is_integer():
                raise ConfigError(f"{self.name} must be an integer, got {value!r}")
            return self._bounded(self.kind(value), str(value))
        raise ConfigError(f"{self.name} must be text, got {type(value).__name__}")

    def _bounded(self, number: float, shown: str) -> Value:
        if "0" in self.off and number == 0:
            return None
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        if not math.isfinite(number) or not low <= number <= high:
            raise ConfigError(f"{self.name} must be within {self.bounds}{self.unit}, got {shown!r}")
        return number

    @property
    def bounds(self) -> str:
        return f"{self.low:g}..{self.high:g}" if self.low is not None else ""

    def describe(self) -> str:
        """The help line with its bounds or choices, and whether it is a secret."""
        extra = []
        if self.bounds:
            extra.append(f"{self.bounds}{self.unit}")
        if self.choices:
            extra.append(" or ".join(f"`{c}`" for c in self.choices))
        if self.secret:
            extra.append("secret")
        return self.help + (f" ({'; '.join(extra)})" if extra else "")

    def default_text(self) -> str:
        if self.shown_default:
            return self.shown_default
        if self.default is None:
            return "unset"
        if self.kind is bool:
            return "1" if self.default else "0"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)


def _flag(name: str, raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true/false, yes/no), got {value!r}")


_S = " seconds"
VARIABLES: tuple[Variable, ...] = (
    # -- the COC API --------------------------------------------------------------------------
    Variable(
        name="COC_ENDPOINT",
        help="base URL of the COC API: https, or http to a loopback host only; never replaced "
        "by the simulator silently; no `user:password@` inside (refused, never echoed)",
        shown_default="required",
        commands=_CLIENT_READERS,
    ),
    Variable(
        name="COC_AK",
        help="access key: sign every request with `SDK-HMAC-SHA256`, with `COC_SK`",
        commands=_CLIENT_READERS,
    ),
    Variable(
        name="COC_SK", help="the secret key of `COC_AK`", secret=True, commands=_CLIENT_READERS
    ),
    Variable(
        name="COC_TOKEN",
        help="or an IAM token sent as `X-Auth-Token` (not together with `COC_AK`/`COC_SK`)",
        secret=True,
        commands=_CLIENT_READERS,
    ),
    Variable(name="COC_PROJECT_ID", help="sent as `x-project-id`", commands=_CLIENT_READERS),
    Variable(
        name="COC_CA_BUNDLE",
        help="CA bundle of a private certificate authority; certificates are always verified",
        shown_default="system CAs",
        commands=_CLIENT_READERS,
    ),
    Variable(
        name="COC_MAX_RPS",
        help="request rate cap of the whole run (with `COC_REDIS_URL`, of every run at once)",
        kind=float,
        default=DEFAULT_MAX_RPS,
        low=MIN_MAX_RPS,
        high=MAX_MAX_RPS,
        unit=" requests/s, or 0 for no cap",
        off=("0", "none", "unlimited"),
        commands=_CLIENT_READERS,
    ),
    Variable(
        name="COC_CONCURRENCY",
        help="requests in flight at most",
        kind=int,
        default=DEFAULT_CONCURRENCY,
        low=1,
        high=MAX_CONCURRENCY,
        commands=_CLIENT_READERS,
    ),
    Variable(
        name="COC_MAX_ATTEMPTS",
        help="attempts per request before a transient fault (429, 5xx, reset, time-out) fails",
        kind=int,
        default=DEFAULT_MAX_ATTEMPTS,
        low=1,
        high=MAX_ATTEMPTS_LIMIT,
        commands=_CLIENT_READERS,
    ),
    Variable(
        name="COC_RETRY_BUDGET_S",
        help="seconds one request may spend in retries",
        kind=float,
        default=DEFAULT_RETRY_BUDGET_S,
        low=MIN_RETRY_BUDGET_S,
        high=MAX_RETRY_BUDGET_S,
        unit=_S,
        commands=_CLIENT_READERS,
    ),
    Variable(
        name="COC_REDIS_URL",
        help="a deployment's shared Redis: `COC_MAX_RPS` becomes one budget for every run, "
        "and day and build locks every machine sees",
        shown_default="unset: this process's pacing, this machine's locks",
        secret=True,  # it may carry a password
        commands=_WAREHOUSE_READERS,
    ),
    # -- the warehouse ------------------------------------------------------------------------
    Variable(
        name="COC_WAREHOUSE",
        help="warehouse root: a local folder or an `s3://bucket[/prefix]` URI, "
        "no glob characters (`*?[]{}`)",
        shown_default="required",
        commands=_WAREHOUSE_READERS,
    ),
    Variable(
        name="COC_DUCKDB",
        help="the DuckDB file of views and marts: a local file (required for an `s3://` "
        "warehouse); the build replaces it only if it wrote it",
        shown_default="`$COC_WAREHOUSE/coc.duckdb`",
        commands=_WAREHOUSE_READERS,
    ),
    Variable(
        name="COC_TIMEZONE",
        help="IANA zone of the daily partition boundaries; fixed per warehouse "
        "(`coc-etl repartition` changes it)",
        default="UTC",
        check=zone,
        commands=_WAREHOUSE_READERS,
    ),
    Variable(
        name="COC_DAY_LOCK_TIMEOUT_S",
        help="seconds a run waits for another run of the same day before it fails naming it "
        "(0: fail at once)",
        kind=float,
        default=DEFAULT_LOCK_TIMEOUT_S,
        low=0.0,
        high=MAX_DAY_LOCK_TIMEOUT_S,
        unit=_S,
        commands=_WAREHOUSE_READERS,
    ),
    Variable(
        name="COC_VACUUM_RETENTION_HOURS",
        help="hours a superseded data file stays before the vacuum; the reach of `report --as-of`",
        kind=float,
        default=DEFAULT_VACUUM_RETENTION_H,
        low=MIN_VACUUM_RETENTION_H,
        high=MAX_VACUUM_RETENTION_H,
        unit=" hours",
        commands=_WAREHOUSE_READERS,
    ),
    Variable(
        name="COC_MAX_SHRINK",
        help="share of a published day's instances a run may drop before it is refused",
        kind=float,
        default=DEFAULT_MAX_SHRINK,
        low=0.0,
        high=1.0,
        commands=_WAREHOUSE_READERS,
    ),
    Variable(
        name="COC_ALLOW_SHRINK",
        help="`1`: publish a day however much it shrinks (or `ingest --allow-shrink`)",
        kind=bool,
        default=False,
        commands=_WAREHOUSE_READERS,
    ),
    Variable(
        name="COC_ARCHIVE_RETENTION_DAYS",
        help="days of raw archive kept, counted back from today; `0` keeps every day",
        kind=int,
        low=1,
        high=MAX_ARCHIVE_RETENTION_DAYS,
        off=("0",),
        shown_default="every day",
        commands=_WAREHOUSE_READERS,
    ),
    # -- object storage (an s3:// warehouse) --------------------------------------------------
    Variable(
        name="AWS_ACCESS_KEY_ID",
        help="object-storage key of an `s3://` warehouse, with `AWS_SECRET_ACCESS_KEY`",
        shown_default="the SDK's chain (instance profile, `~/.aws`)",
        commands=_S3_READERS,
    ),
    Variable(
        name="AWS_SECRET_ACCESS_KEY",
        help="the secret of `AWS_ACCESS_KEY_ID`",
        secret=True,
        commands=_S3_READERS,
    ),
    Variable(
        name="AWS_SESSION_TOKEN",
        help="a temporary credential's session token",
        secret=True,
        commands=_S3_READERS,
    ),
    Variable(
        name="AWS_REGION",
        help="the object store's region",
        fallback="AWS_DEFAULT_REGION",
        shown_default="`AWS_DEFAULT_REGION`",
        commands=_S3_READERS,
    ),
    Variable(
        name="AWS_DEFAULT_REGION",
        help="the region when `AWS_REGION` is unset",
        commands=_S3_READERS,
    ),
    Variable(
        name="AWS_ENDPOINT_URL",
        help="the object store's endpoint (Huawei OBS, MinIO): https, or http to loopback only",
        shown_default="AWS",
        commands=_S3_READERS,
    ),
    Variable(
        name="COC_S3_URL_STYLE",
        help="bucket addressing",
        choices=URL_STYLES,
        shown_default="`path` for an IP or `localhost` endpoint, `vhost` otherwise",
        commands=_S3_READERS,
    ),
    Variable(
        name="COC_S3_CONDITIONAL_PUT",
        help="`etag`: the store serialises Delta commits (`If-None-Match`); "
        "`none`: the product's lock does (OBS)",
        choices=CONDITIONAL_PUT,
        default="etag",
        commands=_S3_READERS,
    ),
    Variable(
        name="COC_S3_CONNECT_TIMEOUT_S",
        help="seconds to wait for a connection to the object store before a retry",
        kind=float,
        default=10.0,
        low=0.5,
        high=600.0,
        unit=_S,
        commands=_S3_READERS,
    ),
    Variable(
        name="COC_S3_TIMEOUT_S",
        help="seconds to wait for each answer of the object store before a retry",
        kind=float,
        default=60.0,
        low=0.5,
        high=3600.0,
        unit=_S,
        commands=_S3_READERS,
    ),
    # -- alerts -------------------------------------------------------------------------------
    Variable(
        name="COC_ALERT_CHANNELS",
        help="where alert episodes are delivered: a JSON list of channels, or "
        "`@/path/to/file.json` (docs/alerts.md)",
        secret=True,
        shown_default="unset: no delivery",
        commands=_ALERT_READERS,
        field_name="channels",
    ),
    Variable(
        name="COC_DASHBOARD_URL",
        help="the dashboard's address, for a link in each alert filtered to its key",
        shown_default="unset: no link",
        commands=_ALERT_READERS,
    ),
    Variable(
        name="COC_ALERT_DIGEST",
        help="`1`: a daily reminder of every episode still open",
        kind=bool,
        default=False,
        commands=_ALERT_READERS,
        field_name="digest",
    ),
    # -- the Dagster code location (read when it loads) ---------------------------------------
    Variable(
        name="COC_LOOKBACK_DAYS",
        help="days before yesterday the nightly run reads again",
        kind=int,
        default=DEFAULT_LOOKBACK_DAYS,
        low=0,
        high=MAX_LOOKBACK_DAYS,
        commands=(DAGSTER,),
    ),
    Variable(
        name="COC_EXECUTOR",
        help="how a Dagster run executes its steps: in the run's own process, or a process "
        "per step",
        choices=EXECUTORS,
        default="in_process",
        commands=(DAGSTER,),
    ),
    Variable(
        name="COC_BACKFILL_DAYS_PER_RUN",
        help="a backfill runs as one run per this many days",
        kind=int,
        low=1,
        high=MAX_BACKFILL_DAYS_PER_RUN,
        shown_default="unset: one run for the whole range",
        commands=(DAGSTER,),
    ),
)

BY_NAME: dict[str, Variable] = {v.name: v for v in VARIABLES}

#: the variables of each settings object, and of its Dagster resource
CLIENT_VARIABLES = (
    "COC_ENDPOINT",
    "COC_AK",
    "COC_SK",
    "COC_TOKEN",
    "COC_PROJECT_ID",
    "COC_CA_BUNDLE",
    "COC_MAX_RPS",
    "COC_CONCURRENCY",
    "COC_MAX_ATTEMPTS",
    "COC_RETRY_BUDGET_S",
    "COC_REDIS_URL",
)
OBJECT_STORE_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "COC_S3_URL_STYLE",
    "COC_S3_CONDITIONAL_PUT",
    "COC_S3_CONNECT_TIMEOUT_S",
    "COC_S3_TIMEOUT_S",
)
WAREHOUSE_VARIABLES = (
    "COC_WAREHOUSE",
    "COC_DUCKDB",
    "COC_TIMEZONE",
    "COC_DAY_LOCK_TIMEOUT_S",
    "COC_REDIS_URL",
    "COC_VACUUM_RETENTION_HOURS",
    "COC_MAX_SHRINK",
    "COC_ALLOW_SHRINK",
    "COC_ARCHIVE_RETENTION_DAYS",
    *OBJECT_STORE_VARIABLES,
)
ALERT_VARIABLES = ("COC_ALERT_CHANNELS", "COC_DASHBOARD_URL", "COC_ALERT_DIGEST")


def variable(name: str) -> Variable:
    return BY_NAME[name]


def read_all(names: Sequence[str], env: Mapping[str, str]) -> dict[str, Value]:
    """Each variable's checked value, by its field name (the settings builders' keywords)."""
    return {BY_NAME[n].field: BY_NAME[n].read(env) for n in names}


def accept_all(names: Sequence[str], given: Mapping[str, Value]) -> dict[str, Value]:
    """Typed values by field name (a resource's fields), each checked as if read."""
    return {BY_NAME[n].field: BY_NAME[n].accept(given.get(BY_NAME[n].field)) for n in names}


def process_env() -> Mapping[str, str]:
    """The process's environment: the one place the product reads it."""
    return os.environ


def is_set(name: str, env: Mapping[str, str] | None = None) -> bool:
    return BY_NAME[name].is_set(process_env() if env is None else env)


# -- what is generated from the declaration ---------------------------------------------------


def help_section(command: str | None = None) -> str:
    """``environment:`` for a command's ``--help`` (every variable when ``command`` is None)."""
    lines = ["environment:" if command else "environment (each command's --help: what it reads):"]
    for v in VARIABLES:
        if command is not None and command not in v.commands:
            continue
        text = v.describe().replace("`", "") + f" [default: {v.default_text().replace('`', '')}]"
        lines.extend(
            textwrap.wrap(
                text,
                width=100,
                initial_indent=f"  {v.name:<27} ",
                subsequent_indent=" " * 30,
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines) + "\n"


TABLE_START, TABLE_END = "<!-- config -->", "<!-- /config -->"


def markdown_table() -> str:
    """The README's configuration table."""
    rows = ["| variable | meaning | default | read by |", "|---|---|---|---|"]
    for v in VARIABLES:
        readers = ", ".join("Dagster" if c == DAGSTER else f"`{c}`" for c in v.commands)
        if set(v.commands) == set(COMMANDS):
            readers = "every command, Dagster"
        rows.append(f"| `{v.name}` | {v.describe()} | {v.default_text()} | {readers} |")
    return "\n".join(rows) + "\n"


def with_table(readme: str) -> str:
    """``readme`` with its table between the markers replaced by the generated one."""
    head, found, rest = readme.partition(TABLE_START)
    _, found_end, tail = rest.partition(TABLE_END)
    if not (found and found_end):
        raise ValueError(f"no {TABLE_START} ... {TABLE_END} markers")
    return f"{head}{TABLE_START}\n{markdown_table()}{TABLE_END}{tail}"


def main(argv: Sequence[str]) -> int:
    if list(argv) == ["--markdown"]:
        sys.stdout.write(markdown_table())
        return 0
    if len(argv) == 2 and argv[0] == "--write":
        with open(argv[1], encoding="utf-8") as f:
            text = f.read()
        with open(argv[1], "w", encoding="utf-8") as f:
            f.write(with_table(text))
        return 0
    print("usage: python -m pipelines.variables --markdown | --write README.md", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
