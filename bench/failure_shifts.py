"""7. failure_shifts: false alarms over steady simulated days, and the planted onsets found.

False alarms: for each of a few simulator seeds, ``shift_days`` + 1 days with nothing planted
(``rollouts=False``: not even the built-in mid-span regression) are served over loopback,
published by ``ingest_days`` and built into ``coc.duckdb``; every row of ``failure_shifts``
with a score (the first day has no baseline) is a key-day tested, and every alert among them
is a false alarm. Target: at most 1 per 1,000 key-days, over all seeds together.

Onsets: the same estate with four onsets planted on different days (a host, a new message
template, a zone, a script version rolled out); each should alert on its day with ``since``
= that day, rank first by score in its dimension, and stay open (alert, same ``since``) on
every later day with runs of its key, the plants going on to the end. Every alert row counts
as a false alarm on the steady days, those of an episode's later days included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.core import Row, Scale, Section, Spread, Target, scratch_dir
from coc_simulator import SimConfig, SimulatorServer
from coc_simulator.scenarios import planted_shifts
from pipelines.coc.settings import ClientSettings
from pipelines.ingest import ingest_days
from pipelines.settings import WarehouseSettings
from warehouse.build import build_warehouse, connect

NOW = datetime(2026, 11, 26, 0, 30, tzinfo=UTC)
SEEDS = (7, 11, 23)


def _warehouse(config: SimConfig, root: Path) -> str:
    with SimulatorServer(config) as sim:
        settings = ClientSettings(endpoint=sim.url, max_rps=None)
        wh = WarehouseSettings(warehouse=str(root), duckdb_path=str(root / "coc.duckdb"))
        ingest_days(settings, wh, sim.dataset.days()[:-1])
    return build_warehouse(warehouse=str(root), duckdb_path=str(root / "coc.duckdb")).duckdb_path


def _false_alarms(path: str) -> dict[str, Any]:
    con = connect(path)
    try:
        per_dimension = con.execute(
            """
            SELECT dimension, count(*), count(*) FILTER (WHERE alert)
            FROM failure_shifts WHERE score IS NOT NULL
            GROUP BY dimension ORDER BY dimension
            """
        ).fetchall()
        days = con.execute(
            "SELECT count(DISTINCT dt) FROM failure_shifts WHERE score IS NOT NULL"
        ).fetchall()[0][0]
    finally:
        con.close()
    return {
        "days": days,
        "tested": sum(n for _, n, _ in per_dimension),
        "alerts": sum(a for _, _, a in per_dimension),
        "by_dimension": {d: {"tested": n, "alerts": a} for d, n, a in per_dimension},
    }


def _onsets(root: Path, days: int) -> dict[str, Any]:
    scenario = planted_shifts(now=NOW, last=NOW.date() - timedelta(days=1), days=days)
    config = scenario.config
    path = _warehouse(config, root)
    con = connect(path)
    found: dict[str, Any] = {}
    try:
        for dimension, day in scenario.days.items():
            key, alert, since, score = con.execute(
                """
                SELECT key, alert, since, score
                FROM failure_shifts WHERE dt = ? AND dimension = ? AND score IS NOT NULL
                ORDER BY score DESC LIMIT 1
                """,
                [day, dimension],
            ).fetchall()[0]
            want = scenario.keys[dimension]  # a message's key starts with the template
            first = key.startswith(want) if dimension == "message_pattern" else key == want
            later = con.execute(
                """
                SELECT count(*), count(*) FILTER (WHERE alert AND since = ?)
                FROM failure_shifts WHERE dt > ? AND dimension = ? AND key = ?
                """,
                [day, day, dimension, key],
            ).fetchall()[0]
            found[dimension] = {
                "day": day.isoformat(),
                "ranks_first": bool(first),
                "alert": bool(alert),
                "since_right": since == day,
                "score": round(score, 2),
                # the later days with runs of the key, and those still alerting with its since
                "later_days": later[0],
                "still_open": later[0] == later[1],
            }
    finally:
        con.close()
    return found


def measure(scale: Scale) -> Section:
    section = Section(name="failure_shifts", title="7 failure_shifts: false alarms and onsets")
    days = 3 if scale.quick else 31
    seeds = SEEDS[:1] if scale.quick else SEEDS
    runs = []
    with scratch_dir("shifts") as root:
        for seed in seeds:
            config = SimConfig(now=NOW, days=days + 1, seed=seed, rollouts=False)
            runs.append(_false_alarms(_warehouse(config, root / f"steady-{seed}")))
        # --quick: the false-alarm count only (the onsets need two weeks of days)
        onsets = {} if scale.quick else _onsets(root / "onsets", 15)
    tested = sum(r["tested"] for r in runs)
    alerts = sum(r["alerts"] for r in runs)
    section.rows.append(
        Row(
            metric=f"false alarms per 1,000 key-days ({len(seeds)} seeds × {days} days)",
            spread=Spread.of([1000 * alerts / tested]),
            target=Target("<=", 1.0),
            note=f"{alerts} alert rows of {tested:,} key-days tested",
        )
    )
    found = sum(o["alert"] and o["ranks_first"] and o["since_right"] for o in onsets.values())
    persisted = sum(o["still_open"] for o in onsets.values())
    if onsets:
        section.rows.append(
            Row(
                metric="planted onsets found on their day, first in their dimension, right since",
                text=f"{found} of {len(onsets)}",
                passed_override=found == len(onsets),
                target_text="4 of 4",
            )
        )
        section.rows.append(
            Row(
                metric="planted onsets still open with their since on every later day",
                text=f"{persisted} of {len(onsets)}",
                passed_override=persisted == len(onsets),
                target_text="4 of 4",
            )
        )
    section.detail = {"steady": dict(zip(map(str, seeds), runs, strict=True)), "onsets": onsets}
    return section
