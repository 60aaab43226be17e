"""Planted onsets: failure patterns that start on a given day, for ``failure_shifts`` to find.

Each onset applies to the tickets created on or after ``day`` (UTC) and adds ``failure``
to the failure probability of the instances it concerns:

- ``ZoneOnset``: every host of ``zone`` (failures read like the bad zone's: connection
  refused, full disks);
- ``HostOnset``: the host at index ``host`` of the dataset's pool (``Dataset.hosts``);
- ``VersionOnset``: ``script`` rolls out ``version`` that day (every later ticket of the
  script runs it), which fails with ``failure`` more than the script's base rate;
- ``MessageOnset``: every host, with a message template that never occurs otherwise.

An onset with ``until`` stops there: tickets created on or after that day are as without it
(``VersionOnset`` never stops: the version stays rolled out).

Without onsets the dataset is exactly what it was: the extra probabilities are added to
the thresholds of the same random draws, so a config with onsets differs from one without
only where an onset applies.

On the command line (``coc-etl simulator --onset SPEC``, repeatable), ``parse_onset`` reads
``zone:ZONE:DAY:FAILURE``, ``host:INDEX:DAY:FAILURE``, ``version:SCRIPT@VERSION:DAY:FAILURE``
or ``message:DAY:FAILURE``, DAY as YYYY-MM-DD and FAILURE within 0..1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from coc_simulator.catalog import Host


@dataclass(frozen=True, kw_only=True)
class ZoneOnset:
    zone: str
    day: date
    failure: float
    #: the first day it no longer applies (None: it goes on)
    until: date | None = None


@dataclass(frozen=True, kw_only=True)
class HostOnset:
    host: int
    day: date
    failure: float
    #: the first day it no longer applies (None: it goes on)
    until: date | None = None


@dataclass(frozen=True, kw_only=True)
class VersionOnset:
    script: str
    version: str
    day: date
    failure: float


@dataclass(frozen=True, kw_only=True)
class MessageOnset:
    day: date
    failure: float
    #: the first day it no longer applies (None: it goes on)
    until: date | None = None


Onset = ZoneOnset | HostOnset | VersionOnset | MessageOnset


ONSET_FORMS = (
    "zone:ZONE:DAY:FAILURE",
    "host:INDEX:DAY:FAILURE",
    "version:SCRIPT@VERSION:DAY:FAILURE",
    "message:DAY:FAILURE",
)


def parse_onset(text: str) -> Onset:
    """One onset from its command-line form; a ValueError names what is wrong."""
    kind, _, rest = text.partition(":")
    parts = rest.split(":")
    if kind == "message":
        parts.insert(0, "")
    if kind not in ("zone", "host", "version", "message") or len(parts) != 3:
        raise ValueError(f"onset {text!r}: expected one of {', '.join(ONSET_FORMS)}")
    target, day_text, failure_text = parts
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise ValueError(f"onset {text!r}: {day_text!r} is not a YYYY-MM-DD day") from None
    try:
        failure = float(failure_text)
    except ValueError:
        raise ValueError(f"onset {text!r}: failure {failure_text!r} is not a number") from None
    if not 0.0 <= failure <= 1.0:
        raise ValueError(f"onset {text!r}: failure must be within 0..1")
    if kind == "message":
        return MessageOnset(day=day, failure=failure)
    if not target:
        raise ValueError(f"onset {text!r}: the {kind} is missing")
    if kind == "zone":
        return ZoneOnset(zone=target, day=day, failure=failure)
    if kind == "host":
        if not target.isdigit():
            raise ValueError(f"onset {text!r}: host must be an index into the host pool")
        return HostOnset(host=int(target), day=day, failure=failure)
    script, at, version = target.partition("@")
    if not (script and at and version):
        raise ValueError(f"onset {text!r}: expected SCRIPT@VERSION, not {target!r}")
    return VersionOnset(script=script, version=version, day=day, failure=failure)


def onset_ms(onset: Onset) -> int:
    """The onset's first instant, epoch milliseconds (00:00 UTC of its day)."""
    return _day_ms(onset.day)


def applies(onset: Onset, created_ms: int) -> bool:
    """Whether ``onset`` applies to a ticket created at ``created_ms``."""
    if created_ms < onset_ms(onset):
        return False
    until = getattr(onset, "until", None)
    return until is None or created_ms < _day_ms(until)


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def validate_onsets(onsets: Sequence[Onset], hosts: int) -> None:
    """Refuse onsets that cannot apply, naming the one that is wrong."""
    for onset in onsets:
        if not 0.0 <= onset.failure <= 1.0:
            raise ValueError(f"onset {onset}: failure must be within 0..1")
        if isinstance(onset, HostOnset) and not 0 <= onset.host < hosts:
            raise ValueError(f"onset {onset}: host must be an index below {hosts}")


def host_extra(
    onsets: Sequence[Onset], created_ms: int, hosts: Sequence[Host]
) -> dict[int, float] | None:
    """Extra failure probability per host index for a ticket created at ``created_ms``
    (None when nothing applies)."""
    extra: dict[int, float] = {}
    for onset in onsets:
        if not applies(onset, created_ms):
            continue
        if isinstance(onset, ZoneOnset):
            for n, host in enumerate(hosts):
                if host.zone_id == onset.zone:
                    extra[n] = extra.get(n, 0.0) + onset.failure
        elif isinstance(onset, HostOnset):
            extra[onset.host] = extra.get(onset.host, 0.0) + onset.failure
    return extra or None


def message_extra(onsets: Sequence[Onset], created_ms: int) -> float:
    """Probability that an instance of a ticket created at ``created_ms`` fails with the new
    message template."""
    return sum(o.failure for o in onsets if isinstance(o, MessageOnset) and applies(o, created_ms))
