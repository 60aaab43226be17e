"""Alert episodes: an alert that lasts as long as the problem.

``failure_shifts`` decides, per day and key, whether the day is an onset: the key fails
surprisingly more than in the 7 days before (its ``_onset`` column). A 7-day baseline soon
takes in a shift that persists, so the onset rule alone stops alerting a day or two after the
onset while the key fails just as much. An episode fixes that:

- it opens on an onset day (``since``, the episode's ``opened``), and freezes the key's
  reference of that day: the failed and counted instances it was compared with (its own 7
  days before, or its dimension's for a key that had none);
- on each later day with a row for the key it stays open while the day is still elevated
  against that frozen reference: a score of at least ``PERSIST_SCORE`` (the same signed root
  of G, divided by the same dimension dispersion of the day) and a rate at least
  ``MIN_RATIO`` times the reference's; or the onset rule holds again that day;
- it closes on the first day with instances that is neither (that row's ``alert`` is false);
  a day without instances of the key leaves it open but quiet. A ``message_pattern`` key has
  a row only on days that pattern failed, so a day with instances but no row closes it.

False alarms: an episode can only open through the onset rule, whose Bonferroni threshold
over every key tested that day keeps a steady day's chance of any false onset near 5%.
Persistence is tested on that one key, chosen by its onset, at one-sided 1%: a false onset
lasts a second day with probability about 1%, so the false alert days of a steady estate are
those of the onset rule times about 1.01.

Incremental: the days from ``first`` on are replayed (``track_episodes``); a key with an
episode open across ``first`` is replayed from its onset, whose row is older than ``first`` and
so unchanged, which gives the same episodes as a full build.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import duckdb
import pyarrow as pa

#: a day of an open episode stays alerting with at least this score against the frozen
#: reference (one-sided 1% under "nothing changed")
PERSIST_SCORE = 2.326
#: ... and at least this many times the frozen reference's rate (the onset rule's ratio)
MIN_RATIO = 2.0

#: where the episodes are stored (the mart ``alert_episodes`` reads them)
EPISODES_TABLE = "mart_data.failure_shift_episodes"

EPISODES_SCHEMA = pa.schema(
    [
        ("dimension", pa.string()),
        ("key", pa.string()),
        ("opened", pa.date32()),
        ("last_alerted", pa.date32()),
        ("closed", pa.date32()),
        ("peak_score", pa.float64()),
        ("baseline_failed", pa.int64()),
        ("baseline_instances", pa.int64()),
        ("instances", pa.int64()),
        ("failed", pa.int64()),
    ]
)

_CREATE_EPISODES = f"""
CREATE TABLE IF NOT EXISTS {EPISODES_TABLE} (
    dimension VARCHAR, key VARCHAR, opened DATE, last_alerted DATE, closed DATE,
    peak_score DOUBLE, baseline_failed BIGINT, baseline_instances BIGINT,
    instances BIGINT, failed BIGINT
)
"""

_ALERTS_SCHEMA = pa.schema(
    [("dt", pa.date32()), ("dimension", pa.string()), ("key", pa.string()), ("since", pa.date32())]
)


@dataclass(frozen=True, kw_only=True)
class KeyDay:
    """One row of ``failure_shifts`` as the episodes read it."""

    dt: date
    instances: int
    failed: int
    score: float | None
    onset: bool
    reference_failed: int
    reference_instances: int
    dispersion: float | None


@dataclass(kw_only=True)
class Episode:
    dimension: str
    key: str | None
    opened: date
    baseline_failed: int
    baseline_instances: int
    last_alerted: date
    peak_score: float
    instances: int = 0
    failed: int = 0
    closed: date | None = None
    alert_days: list[date] = field(default_factory=list)

    def take(self, day: KeyDay, score: float) -> None:
        self.last_alerted = day.dt
        self.peak_score = max(self.peak_score, score)
        self.instances += day.instances
        self.failed += day.failed
        self.alert_days.append(day.dt)


def signed_root_g(a: float, n: float, b: float, r: float, dispersion: float | None) -> float:
    """The score of ``failure_shifts.sql``: the signed root of the G statistic of ``a`` failed
    of ``n`` against ``b`` of ``r``, divided by the dispersion (at least 1)."""
    if n <= 0 or r <= 0:
        return 0.0
    p1, p0, p = a / n, b / r, (a + b) / (n + r)

    def cell(observed: float, share: float, pooled: float) -> float:
        return 0.0 if observed == 0 else observed * math.log(share / pooled)

    llr = max(
        0.0,
        cell(a, p1, p) + cell(n - a, 1 - p1, 1 - p) + cell(b, p0, p) + cell(r - b, 1 - p0, 1 - p),
    )
    phi = max(1.0, dispersion or 1.0)
    return math.copysign(math.sqrt(2 * llr / phi), p1 - p0) if p1 != p0 else 0.0


def still_elevated(day: KeyDay, episode: Episode) -> tuple[bool, float]:
    """Whether ``day`` is elevated against the episode's frozen reference, and its score."""
    score = signed_root_g(
        day.failed,
        day.instances,
        episode.baseline_failed,
        episode.baseline_instances,
        day.dispersion,
    )
    rate = day.failed / day.instances if day.instances else 0.0
    reference = (
        episode.baseline_failed / episode.baseline_instances if episode.baseline_instances else 0.0
    )
    return score >= PERSIST_SCORE and rate >= MIN_RATIO * reference and day.failed > 0, score


def replay_key(
    dimension: str,
    key: str | None,
    days: Sequence[KeyDay],
    *,
    days_with_data: Sequence[date] = (),
) -> list[Episode]:
    """The episodes of one key from its rows ``days`` (sorted by day, starting with no episode
    open). ``days_with_data``: for a ``message_pattern`` key, the days with instances, on which
    a missing row means none failed with the pattern."""
    by_day = {d.dt: d for d in days}
    timeline = sorted(set(by_day) | {d for d in days_with_data if days and d >= days[0].dt})
    episodes: list[Episode] = []
    open_: Episode | None = None
    for dt in timeline:
        day = by_day.get(dt)
        if open_ is None:
            if day is not None and day.onset:
                open_ = Episode(
                    dimension=dimension,
                    key=key,
                    opened=dt,
                    baseline_failed=day.reference_failed,
                    baseline_instances=day.reference_instances,
                    last_alerted=dt,
                    peak_score=day.score or 0.0,
                )
                open_.take(day, day.score or 0.0)
                episodes.append(open_)
            continue
        if day is None:  # a message pattern that no instance failed with on a day with data
            open_.closed = dt
            open_ = None
            continue
        elevated, score = still_elevated(day, open_)
        if day.onset or elevated:
            open_.take(day, max(score, day.score or 0.0) if day.onset else score)
        else:
            open_.closed = dt
            open_ = None
    return episodes


def track_episodes(con: duckdb.DuckDBPyConnection, stored: str, first: date | None) -> None:
    """Replay the episodes of the stored ``failure_shifts`` rows (``stored``) from ``first`` on:
    set ``alert`` and ``since`` of the rows from ``first`` on and rewrite the episodes that
    reach ``first`` or later in ``EPISODES_TABLE``. ``first`` None: nothing changed."""
    con.execute(_CREATE_EPISODES)
    if first is None:
        return
    day = f"DATE '{first.isoformat()}'"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE episode_starts AS
        SELECT dimension, key, min(start) AS start FROM (
            SELECT dimension, key, opened AS start FROM {EPISODES_TABLE}
            WHERE opened < {day} AND (closed IS NULL OR closed >= {day})
            UNION ALL
            SELECT dimension, key, min(dt) FROM {stored} WHERE _onset AND dt >= {day}
            GROUP BY ALL
        ) GROUP BY ALL
        """
    )
    con.execute(
        f"DELETE FROM {EPISODES_TABLE} WHERE opened >= {day} OR closed IS NULL OR closed >= {day}"
    )
    con.execute(
        f"UPDATE {stored} SET alert = false, since = NULL "
        f"WHERE dt >= {day} AND (alert OR since IS NOT NULL)"
    )
    rows = con.execute(
        f"""
        SELECT f.dimension, f.key, f.dt, f.instances, f.failed, f.score, f._onset,
            f._reference_failed, f._reference_instances, f._dispersion
        FROM {stored} AS f
        JOIN episode_starts AS s
            ON f.dimension = s.dimension AND f.key IS NOT DISTINCT FROM s.key AND f.dt >= s.start
        ORDER BY f.dimension, f.key, f.dt
        """
    ).fetchall()
    data_days = [
        d
        for (d,) in con.execute(
            f"SELECT DISTINCT dt FROM {stored} "
            "WHERE dt >= (SELECT min(start) FROM episode_starts) ORDER BY dt"
        ).fetchall()
    ]
    con.execute("DROP TABLE episode_starts")
    episodes: list[Episode] = []
    for (dimension, key), days in _by_key(rows):
        episodes += replay_key(
            dimension,
            key,
            days,
            days_with_data=data_days if dimension == "message_pattern" else (),
        )
    _store(con, stored, episodes, first)


def _by_key(rows: Iterable[tuple]) -> Iterable[tuple[tuple[str, str | None], list[KeyDay]]]:
    current: tuple[str, str | None] | None = None
    days: list[KeyDay] = []
    for dimension, key, dt, n, a, score, onset, b, r, phi in rows:
        if (dimension, key) != current:
            if current is not None:
                yield current, days
            current, days = (dimension, key), []
        days.append(
            KeyDay(
                dt=dt,
                instances=n,
                failed=a,
                score=score,
                onset=bool(onset),
                reference_failed=b or 0,
                reference_instances=r or 0,
                dispersion=phi,
            )
        )
    if current is not None:
        yield current, days


def _store(
    con: duckdb.DuckDBPyConnection, stored: str, episodes: list[Episode], first: date
) -> None:
    alerts = pa.Table.from_pylist(
        [
            {"dt": dt, "dimension": e.dimension, "key": e.key, "since": e.opened}
            for e in episodes
            for dt in e.alert_days
            if dt >= first
        ],
        schema=_ALERTS_SCHEMA,
    )
    rows = pa.Table.from_pylist(
        [{name: getattr(e, name) for name in EPISODES_SCHEMA.names} for e in episodes],
        schema=EPISODES_SCHEMA,
    )
    con.register("episode_alerts", alerts)
    con.register("episode_rows", rows)
    try:
        con.execute(
            f"UPDATE {stored} AS f SET alert = true, since = a.since FROM episode_alerts AS a "
            "WHERE f.dt = a.dt AND f.dimension = a.dimension AND f.key IS NOT DISTINCT FROM a.key"
        )
        con.execute(f"INSERT INTO {EPISODES_TABLE} SELECT * FROM episode_rows")
    finally:
        con.unregister("episode_alerts")
        con.unregister("episode_rows")
