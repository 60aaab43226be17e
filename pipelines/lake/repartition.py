"""Re-cut every day of a local warehouse in another zone: ``coc-etl repartition --timezone``.

A ticket belongs to the day of its ``created_at`` in the warehouse's zone, and its batches
and instances go with it. Re-cutting moves each ticket, with its rows, to its day in the new
zone; the rows themselves are not fetched again. Steps, each safe to run again:

1. The manifest says ``repartitioning_to: ZONE``: from now until step 4, runs refuse to start.
2. Every new day is written whole under ``<root>/_repartition/`` (the published days are only
   read). A ticket found in two days (a warehouse that was already cut in two zones) is kept
   once, from its latest day. ``_repartition/_complete`` marks the end of this step.
3. Each new day is published with the ``DayWriter`` (atomically per table, as a run does), and
   the old days that no ticket falls on any more are removed.
4. The manifest names the new zone; ``_repartition`` is removed.

Interrupted before ``_complete``, the next call starts step 2 again from the published days,
which are untouched; after it, the next call publishes again from ``_repartition``.

The days at the edges are partial: the first new day begins before the first old day did
(or the last ends after the last), and the old days never held those hours' tickets.
``RepartitionResult.partial_days`` names every new day whose hours were not all covered by
old days, so that they can be ingested again.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.errors import ConfigError
from pipelines.lake.day_writer import DayWriter, publisher_for
from pipelines.lake.migrate import ensure_tables
from pipelines.lake.publish import ShrinkGuard
from pipelines.lake.tables import Lake
from pipelines.lake.zone_record import Manifest, read_manifest, write_manifest
from pipelines.settings import zone
from pipelines.transform.schemas import TABLES

WORK = "_repartition"
COMPLETE = "_complete"
_DAY_FOLDER = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, kw_only=True)
class RepartitionResult:
    old_timezone: str
    timezone: str
    old_days: tuple[date, ...]
    days: tuple[date, ...]
    #: new days some of whose hours no old day covered: ingest them again
    partial_days: tuple[date, ...]
    tickets: int


def repartition(root: str, *, timezone: str, assumed_timezone: str) -> RepartitionResult:
    """Re-cut every day under ``root`` into ``timezone``.

    ``assumed_timezone`` is the zone of a warehouse that has no manifest yet.
    """
    if "://" in root:
        raise ConfigError("coc-etl repartition works on a local COC_WAREHOUSE only")
    new_tz = zone(timezone)
    base = Path(root).expanduser().resolve()
    manifest = read_manifest(str(base))
    old_timezone = manifest.timezone if manifest else assumed_timezone
    old_tz = zone(old_timezone)
    write_manifest(str(base), Manifest(timezone=old_timezone, repartitioning_to=timezone))
    ensure_tables(Lake(str(base)))  # a warehouse of plain Hive folders becomes Delta first
    work = base / WORK
    old_days = _days(base, "script_orders")
    if not (work / COMPLETE).exists():
        shutil.rmtree(work, ignore_errors=True)
        tickets = _cut(base, work, new_tz)
        (work / COMPLETE).write_text(json.dumps({"timezone": timezone, "tickets": tickets}))
    else:  # a previous call stopped while publishing: the cut days are whole, publish them
        tickets = json.loads((work / COMPLETE).read_text())["tickets"]
        old_days = sorted(set(old_days) | set(_days(work, "script_orders")))
    new_days = _days(work, "script_orders")
    for day in new_days:
        _publish_day(base, work, day)
    lake = Lake(str(base))
    for day in sorted(set(old_days) - set(new_days)):
        for table in TABLES:
            lake.commit_day(table, TABLES[table], day, [], run_id="repartition")
    write_manifest(str(base), Manifest(timezone=timezone))
    shutil.rmtree(work, ignore_errors=True)
    covered = set(old_days)
    return RepartitionResult(
        old_timezone=old_timezone,
        timezone=timezone,
        old_days=tuple(old_days),
        days=tuple(new_days),
        partial_days=tuple(d for d in new_days if not _covered(d, new_tz, old_tz, covered)),
        tickets=tickets,
    )


def _days(base: Path, table: str) -> list[date]:
    """The published days of ``table``: those its Delta log names files of."""
    return sorted(Lake(str(base)).snapshot(table).files)


def _read(base: Path, table: str, day: date) -> pa.Table:
    named = Lake(str(base)).snapshot(table).files.get(day, ())
    files = [str(base / table / p) for p in named]
    if not files:
        return TABLES[table].empty_table()
    return pa.concat_tables(pq.read_table(f, schema=TABLES[table]) for f in files)


def _cut(base: Path, work: Path, new_tz: ZoneInfo) -> int:
    """Write every new day under ``work``; returns the number of tickets placed."""
    # execute_uuid -> (old day it is read from, new day it goes to); the latest old day wins
    placed: dict[str, tuple[date, date]] = {}
    for old in _days(base, "script_orders"):
        orders = _read(base, "script_orders", old).select(["execute_uuid", "created_at"])
        for uuid, created in zip(*(orders.column(i).to_pylist() for i in (0, 1)), strict=True):
            placed[uuid] = (old, old if created is None else created.astimezone(new_tz).date())
    by_new_day: dict[date, dict[date, list[str]]] = {}
    for uuid, (old, new) in placed.items():
        by_new_day.setdefault(new, {}).setdefault(old, []).append(uuid)
    for new_day, sources in sorted(by_new_day.items()):
        with DayWriter(root=str(work), day=new_day) as writer:
            for table in TABLES:
                for old, uuids in sorted(sources.items()):
                    rows = _read(base, table, old)
                    keep = pc.is_in(rows.column("execute_uuid"), value_set=pa.array(uuids))
                    writer.write(table, rows.filter(keep))
            writer.commit()
    return len(placed)


def _publish_day(base: Path, work: Path, day: date) -> None:
    # tickets move between days on purpose: a day may shrink by any share
    publisher = publisher_for(str(base), shrink=ShrinkGuard(allow=True))
    with DayWriter(publisher=publisher, day=day) as writer:
        for table in TABLES:
            writer.write(table, _read(work, table, day))
        writer.commit()


def _covered(day: date, new_tz: ZoneInfo, old_tz: ZoneInfo, old_days: set[date]) -> bool:
    """Whether every hour of ``day`` in ``new_tz`` lies in an old day that was present."""
    start = datetime.combine(day, time(), new_tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), new_tz).astimezone(UTC)
    first = start.astimezone(old_tz).date()
    last = (end - timedelta(milliseconds=1)).astimezone(old_tz).date()
    return all(first + timedelta(days=i) in old_days for i in range((last - first).days + 1))
