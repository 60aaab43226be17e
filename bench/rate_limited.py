"""2. Rate-limited run: wall time against a server capped at 50 requests/s / (minimal / 50).

The simulator (in a thread; 50 requests/s is no load) answers 429 with ``Retry-After`` once
its token bucket (50 tokens, refilled at 50/s) is empty. The day's size is picked so that its
minimal requests come close to 2,000: at 50/s the run cannot take less than minimal/50 s
(less the one-second burst the full bucket allows). Two modes of the product's plain path,
interleaved run by run, each run starting on a full bucket:

- ``COC_MAX_RPS=50``: the client paces itself at the known rate;
- adaptive, no cap (``max_rps=None``): the client must find the rate from 429s.
"""

from __future__ import annotations

import time
from typing import Any

from bench.core import Row, Scale, Section, Spread, Stopwatch, Target, scratch_dir
from bench.day import DAY, instances_for_minimal, sized_day
from coc_simulator.server import SimulatorServer
from pipelines.coc.settings import DEFAULT_CONCURRENCY, ClientSettings
from pipelines.ingest import ingest_days
from pipelines.settings import WarehouseSettings

#: mode -> whether the client is told the server's rate (``COC_MAX_RPS``)
MODES: dict[str, bool] = {"COC_MAX_RPS=50": True, "adaptive, no cap": False}


def measure(scale: Scale) -> Section:
    section = Section(name="rate_limited", title="2 rate-limited run")
    rps = scale.rate_limit_rps
    instances = instances_for_minimal(scale.rate_limited_minimal)
    day = sized_day(instances)
    minimal = day.minimal_requests()
    floor_s = minimal / rps
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with SimulatorServer(dataset=day.dataset) as sim, scratch_dir("ratelimited") as root:
        sim.warm(*day.window)
        for run in range(scale.repeats):
            for mode, capped in MODES.items():
                sim.faults.reset()
                sim.faults.update(rate_limit=rps)  # a fresh, full bucket
                sim.stats.reset()
                time.sleep(0.2)
                settings = ClientSettings(
                    endpoint=sim.url,
                    concurrency=DEFAULT_CONCURRENCY,
                    max_rps=rps if capped else None,
                    adaptive=True,
                )
                warehouse = root / f"{run}-{'capped' if capped else 'adaptive'}"
                with Stopwatch() as watch:
                    result = ingest_days(
                        settings,
                        WarehouseSettings(
                            warehouse=str(warehouse), duckdb_path=str(warehouse / "coc.duckdb")
                        ),
                        [DAY],
                    )[0]
                by_status = sim.stats.by_status()
                runs[mode].append(
                    {
                        "seconds": round(watch.seconds, 3),
                        "served": sim.stats.total,
                        "throttled_429": by_status.get(429, 0),
                        "client_429": result.http.throttled,
                        "retries": result.http.retries,
                        "rows": result.rows,
                    }
                )
    section.detail = {
        "rate_limit_rps": rps,
        "instances": instances,
        "minimal": minimal,
        "floor_seconds": floor_s,
        "expected_rows": day.instances,
        "runs": runs,
    }
    for mode, found in runs.items():
        complete = all(r["rows"] == day.instances for r in found)
        walls = [r["seconds"] / floor_s for r in found]
        share = [r["throttled_429"] / r["served"] for r in found]
        mid = sorted(found, key=lambda r: r["seconds"])[len(found) // 2]
        section.rows.append(
            Row(
                metric=f"{mode}: wall / (minimal/{rps:g})",
                spread=Spread.of(walls),
                unit="×",
                target=Target("<=", 1.05),
                passed_override=None if complete else False,
                note=f"{mid['seconds']:.1f} s for {minimal} minimal requests"
                + ("" if complete else "; ROWS MISSING OR EXTRA"),
            )
        )
        section.rows.append(
            Row(
                metric=f"{mode}: 429s / requests",
                spread=Spread.of([100 * s for s in share]),
                unit="%",
                target=Target("<", 1.0, "%"),
                note=f"{mid['throttled_429']} of {mid['served']} requests answered 429",
            )
        )
    return section
