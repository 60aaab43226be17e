"""8. What a run costs around its work: the contract's Dagster command against ``coc-etl``.

Both run as a user runs them, in a fresh process each, against the same simulator (in
another process, ``bench.day``): ``dagster asset materialize -m pipelines.definitions
--select '*' --partition D`` (ingestion, checks and the warehouse step, in the run's process:
``COC_EXECUTOR`` default) and ``coc-etl ingest D`` (the plain function ``ingest_days``, then
the same warehouse build). Each command gets its own warehouse that already holds the
simulator's day, as a nightly run finds it.

- an empty day (no tickets): what each command costs around no work; wall seconds.

Then the day of ``Scale.e2e_instances`` instances, both paths in this process (interpreter
start-up is what the empty day measures): the Dagster path (``materialize`` of the ingestion
and warehouse assets, on an ephemeral instance, in-process like the command) against the
plain function path (``ingest_days`` then ``build_warehouse``), each into a fresh warehouse;
instances/s, the ratio per round. Each path runs once unmeasured first (what a process pays
on first use, such as Arrow's compute kernels, is neither path's); then the two alternate,
each going first in every other round.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from bench.core import Row, Scale, Section, Spread, Stopwatch, Target, ratios, scratch_dir
from bench.day import DAY, simulator_process
from coc_etl.demo import materialize_command

#: a day of the simulator's span without tickets (its data is the two days before NOW)
EMPTY_DAY = date(2026, 11, 1)
BIN = Path(sys.executable).parent


def _env(endpoint: str, warehouse: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COC_", "DAGSTER_"))}
    home = warehouse.parent / f"{warehouse.name}-dagster-home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        COC_ENDPOINT=endpoint,
        COC_WAREHOUSE=str(warehouse),
        COC_MAX_RPS="0",
        DAGSTER_HOME=str(home),
    )
    return env


def _command(kind: str, day: date) -> list[str]:
    if kind == "dagster":
        return materialize_command("--partition", day.isoformat())
    return [str(BIN / "coc-etl"), "ingest", day.isoformat()]


def _timed(kind: str, day: date, endpoint: str, warehouse: Path) -> float:
    with Stopwatch() as watch:
        done = subprocess.run(
            _command(kind, day),
            env=_env(endpoint, warehouse),
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=Path(__file__).parents[1],
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} {day} failed: {(done.stdout + done.stderr)[-2000:]}")
    return watch.seconds


def _in_process(kind: str, endpoint: str, warehouse: Path) -> float:
    from dagster import DagsterInstance, materialize

    from assets.ingestion import build_ingestion_asset
    from assets.partitions import daily_partitions
    from assets.resources import CocApiResource, WarehouseResource
    from assets.warehouse import build_warehouse_asset
    from pipelines.coc.settings import DEFAULT_CONCURRENCY, ClientSettings
    from pipelines.ingest import ingest_days
    from pipelines.settings import WarehouseSettings
    from warehouse.build import build_warehouse

    wh = WarehouseSettings(warehouse=str(warehouse), duckdb_path=str(warehouse / "coc.duckdb"))
    with Stopwatch() as watch:
        if kind == "dagster":
            partitions = daily_partitions("UTC")
            resources = {
                "coc": CocApiResource(
                    endpoint=endpoint, max_rps="0", concurrency=str(DEFAULT_CONCURRENCY)
                ),
                "warehouse": WarehouseResource(warehouse=str(warehouse)),
            }
            result = materialize(
                [build_ingestion_asset(partitions), build_warehouse_asset(partitions)],
                partition_key=DAY.isoformat(),
                resources=resources,
                instance=DagsterInstance.ephemeral(),
            )
            if not result.success:
                raise RuntimeError("the Dagster materialization failed")
        else:
            settings = ClientSettings(
                endpoint=endpoint, max_rps=None, concurrency=DEFAULT_CONCURRENCY
            )
            results = ingest_days(settings, wh, [DAY])
            build_warehouse(
                warehouse=wh.warehouse,
                duckdb_path=wh.duckdb_path,
                changed_days=[r.day for r in results],
            )
    return watch.seconds


def measure(scale: Scale) -> Section:
    section = Section(name="overhead", title="8 the Dagster command against coc-etl")
    instances = scale.e2e_instances
    kinds = ("dagster", "plain")
    empty: dict[str, list[float]] = {k: [] for k in kinds}
    day: dict[str, list[float]] = {k: [] for k in kinds}
    with scratch_dir("overhead") as root, simulator_process(instances, log=root / "sim.log") as sim:
        warehouses = {k: root / f"wh-{k}" for k in kinds}
        for kind in kinds:  # each warehouse starts with the day, as a nightly run finds it
            _timed("plain", DAY, sim.url, warehouses[kind])
        for _ in range(scale.repeats):
            for kind in kinds:
                empty[kind].append(_timed(kind, EMPTY_DAY, sim.url, warehouses[kind]))
        for kind in kinds:  # once each, unmeasured: first use (kernels, caches) is neither's
            _in_process(kind, sim.url, root / f"warm-{kind}")
        for n in range(scale.repeats):
            for kind in kinds if n % 2 == 0 else kinds[::-1]:
                day[kind].append(_in_process(kind, sim.url, root / f"day-{kind}-{n}"))
    section.detail = {"instances": instances, "empty_day": empty, "day": day}
    section.rows += [
        Row(
            metric="empty day: the contract's Dagster command / coc-etl ingest",
            spread=Spread.of(ratios(empty["dagster"], empty["plain"])),
            unit="×",
            target=Target("<=", 3.0),
            note=f"{Spread.of(empty['dagster']).median:.1f} s against "
            f"{Spread.of(empty['plain']).median:.1f} s",
        ),
        Row(
            metric=f"{instances:,} instances, in-process: the Dagster path / the plain "
            "function (ingest + build), instances/s",
            spread=Spread.of(ratios(day["plain"], day["dagster"])),
            unit="×",
            target=Target(">=", 0.9),
            note=f"{instances / Spread.of(day['dagster']).median:,.0f} against "
            f"{instances / Spread.of(day['plain']).median:,.0f} instances/s "
            f"({Spread.of(day['dagster']).median:.1f} s, {Spread.of(day['plain']).median:.1f} s)",
        ),
    ]
    return section
