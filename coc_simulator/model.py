"""The simulator's shared types and constants, imported by every other module of it.

``SimConfig`` (what to generate), a ticket as planned (``Ticket``, ``Batch``: ``plan.py``
fills them), its execution (``Run``, ``BatchRun``: ``execution.py`` draws them), the status
codes of instances, and epoch-millisecond time. This module imports nothing of the
simulator but ``catalog`` and ``onsets``, so ``plan``, ``execution`` and ``data`` never
import one another in a circle.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from coc_simulator.catalog import Script, Version
from coc_simulator.onsets import Onset, validate_onsets

DAY_MS = 86_400_000
SHANGHAI_MIDNIGHT_MS = 16 * 3_600_000  # 00:00 in Asia/Shanghai (UTC+8) is 16:00 UTC
MAX_MARKER = 2_147_483_647
NEVER = -1
READY, PROCESSING, ABNORMAL, CANCELED, FINISHED, ROLLBACKED = range(6)
INSTANCE_STATUSES = ("READY", "PROCESSING", "ABNORMAL", "CANCELED", "FINISHED", "ROLLBACKED")
#: Id gaps drawn with 4 random bits: mostly 1, sometimes 2 or 3, rarely 7.
ID_GAPS = (1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 7)
ID_SPAN = max(ID_GAPS)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(value: datetime | int) -> int:
    """Milliseconds since the epoch; a naive datetime is taken to be UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - _EPOCH) // timedelta(milliseconds=1)
    return int(value)


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """What to generate. ``now`` anchors the span (default: the real time at build)."""

    seed: int = 7
    days: int = 14
    now: datetime | int | None = None
    tickets_per_day: tuple[int, int] = (20, 40)
    max_batch_size: int = 300
    #: Exactly this many instances per day (more tickets as needed), for benchmarks.
    instances_per_day: int | None = None
    #: Give a few tickets ids containing ``/``, ``?``, ``#``, ``%``, ``..`` and spaces.
    hostile_uuids: bool = False
    hosts: int = 4000
    #: False keeps every script on its first version: no built-in mid-span regression
    #: (``upgrade_jdk`` v2.4.0), so that nothing shifts unless an onset says so.
    rollouts: bool = True
    #: Failure patterns planted from a given day on (``onsets.py``).
    onsets: tuple[Onset, ...] = ()
    #: The API as it might change without notice (``catalog.drift``): every host gains a
    #: ``rack`` property, targets lose ``agent_sn``, a ticket's detail gains
    #: ``approval_id`` and sends ``current_execute_batch_index`` as a string.
    drift: bool = False

    def __post_init__(self) -> None:
        low, high = self.tickets_per_day
        if self.days < 1 or not 0 <= low <= high or self.max_batch_size < 1 or self.hosts < 1:
            raise ValueError(f"invalid simulator config: {self}")
        if self.instances_per_day is not None and self.instances_per_day < 0:
            raise ValueError("instances_per_day must be >= 0")
        validate_onsets(self.onsets, self.hosts)


@dataclass(slots=True)
class Batch:
    index: int
    size: int
    rotation_strategy: str = "CONTINUE"
    properties: str | None = None
    id_base: int = 0


@dataclass(slots=True, eq=False)
class Ticket:
    """One script order as planned; ``run`` is filled on first use."""

    gmt_created: int
    seed: int
    script: Script
    version: Version
    creator: str
    order_name: str | None
    regions: tuple[str, ...]
    success_rate: float
    timeout: int
    script_params: list[dict[str, Any]] | None
    batches: list[Batch]
    fate: str = "run"  # run | cancel | pause
    fate_at: int = 0  # position of the batch where the ticket is canceled or pauses after
    order_id: int = 0
    execute_uuid: str = ""
    run: Run | None = field(default=None, repr=False)

    @property
    def region_ids(self) -> str:
        return ",".join(self.regions)

    @property
    def total_instances(self) -> int:
        return sum(b.size for b in self.batches)

    def batch_position(self, index: int) -> int | None:
        for pos, batch in enumerate(self.batches):
            if batch.index == index:
                return pos
        return None


@dataclass(slots=True)
class BatchRun:
    """One batch's instances, column by column, plus when the batch ran (NEVER if not)."""

    ids: array
    hosts: array
    start: array
    finish: array
    status: bytearray
    kind: bytearray
    key: array
    begin: int
    end: int


@dataclass(slots=True)
class Run:
    """A ticket's whole execution: final status, end and the time after which nothing changes."""

    batches: list[BatchRun]
    status: str
    end: int | None  # gmt_finished once settled; None for a PAUSED ticket
    settled_at: int
