"""The planted-shifts scenario that ``failure_shifts``' tests and its bench share.

Four onsets over the days before ``last``: a host that starts failing most of its runs, a zone
at several times its rate, a message template that appears, a script version rolled out.
Each should alert on its own day, with that day as ``since``, and rank first in its dimension,
and stay open with that ``since`` on each later day the key has runs. A fifth, a second host,
fails most of its runs for a few days only (``ENDED``): its episode closes on the first day
after the plant with a run of that host.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from coc_simulator.catalog import BAD_ZONE
from coc_simulator.data import Dataset
from coc_simulator.model import SimConfig
from coc_simulator.onsets import HostOnset, MessageOnset, VersionOnset, ZoneOnset

ZONE = "cn-north-4b"
SCRIPT, VERSION = "deploy_nginx", "v1.3.0"
#: the start of the planted message's pattern (the ``message_pattern`` key it alerts under)
MESSAGE = "TLS handshake with mirror <ip>:<n> failed: certificate expired"
#: each onset's day, counted back from the last day. The zone's comes before the message's:
#: the new message fails 1% more of every ticket from its day on, which doubles a quiet
#: zone's rate (an alert of its own).
DAYS_BEFORE_LAST = {"host": 7, "zone": 5, "message_pattern": 3, "script_version": 0}
#: the host whose plant ends: from this many days before the last, to (not including) that many
ENDED = (5, 2)


@dataclass(frozen=True)
class PlantedShifts:
    config: SimConfig
    #: dimension -> the ``failure_shifts`` key that must rank first (a prefix for messages)
    keys: dict[str, str]
    #: dimension -> the day it must alert on, with that day as ``since``
    days: dict[str, date]
    #: the host whose plant ends, and its first and last-plus-one days
    ended_host: str = ""
    ended_days: tuple[date, date] | None = None


def onset_days(last: date) -> dict[str, date]:
    return {d: last - timedelta(days=n) for d, n in DAYS_BEFORE_LAST.items()}


def planted_shifts(*, now: datetime, last: date, days: int = 15, hosts: int = 800) -> PlantedShifts:
    """The scenario over ``days`` simulated days up to ``now``, its onsets dated from ``last``."""
    fleet = Dataset(SimConfig(now=now, days=days, hosts=hosts)).hosts
    host, ended = [
        n
        for n, h in enumerate(fleet)
        if h.zone_id not in (BAD_ZONE, ZONE) and h.target["agent_status"] == "ONLINE"
    ][:2]
    on = onset_days(last)
    ended_days = (last - timedelta(days=ENDED[0]), last - timedelta(days=ENDED[1]))
    onsets = (
        HostOnset(host=host, day=on["host"], failure=0.9),
        HostOnset(host=ended, day=ended_days[0], failure=0.9, until=ended_days[1]),
        MessageOnset(day=on["message_pattern"], failure=0.01),
        ZoneOnset(zone=ZONE, day=on["zone"], failure=0.1),
        VersionOnset(script=SCRIPT, version=VERSION, day=on["script_version"], failure=0.2),
    )
    keys = {
        "host": fleet[host].target["resource_id"],
        "zone": ZONE,
        "message_pattern": MESSAGE,
        "script_version": f"{SCRIPT} {VERSION}",
    }
    config = SimConfig(now=now, days=days, hosts=hosts, rollouts=False, onsets=onsets)
    return PlantedShifts(
        config=config,
        keys=keys,
        days=on,
        ended_host=fleet[ended].target["resource_id"],
        ended_days=ended_days,
    )
