"""7. The nightly build: its cost follows the days a run changed, not the history.

Two synthetic histories (``synthetic.py``, the real layout and schemas, ~333k instances a
day): ``Scale.history_days`` days each, ~10M and ~100M instances. They are generated once
and cached under ``bench/results/tmp/history-<days>x<rows>`` (git-ignored; about 0.4 GiB
per 10M instances), since writing 100M rows takes minutes.

Per round (5 at full size) and history: the last 4 days are re-materialized (new files through
the product's ``DayWriter``, other rows than before: a new seed), then ``build_warehouse`` runs
in a fresh process (``bench.build_child``) with those 4 days named, as after the nightly run:
its wall time, the seconds of the copy-on-write copy within it, and its peak RSS. The histories
take turns within each round, so the ratio 100M / 10M is taken round by round. Then, on the
100M history, a full rebuild in a fresh process (the first build of a fresh history is one,
else ``rebuild=True``) gives the incremental / full ratio and the full build's memory.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.core import SCRATCH_DIR, Row, Scale, Section, Spread, Stopwatch, Target, mib, ratios
from bench.synthetic import day_tables, vocabulary, write_warehouse
from pipelines.lake.day_writer import DayWriter

#: the last day of every synthetic history (``synthetic.write_warehouse``)
LAST_DAY = dt.date(2026, 11, 25)
#: days a nightly run writes again: yesterday and the 3 before it
CHANGED_DAYS = 4
#: rounds of the full-size measurement: each build takes seconds, so its ratio is noisy
ROUNDS = 5


def history(days: int, rows_per_day: int) -> Path:
    """The cached synthetic history of ``days`` days, generated on first use."""
    root = SCRATCH_DIR / f"history-{days}x{rows_per_day}"
    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        write_warehouse(str(root), days=days, rows_per_day=rows_per_day)
        done.write_text("ok\n")
    return root


def rematerialize(root: Path, rows_per_day: int, round_: int) -> list[dt.date]:
    """Write the last ``CHANGED_DAYS`` days again with other rows (a new seed per round)."""
    rng = np.random.default_rng(1_000 + round_)
    vocab = vocabulary(np.random.default_rng(4))  # the history's hosts, as in write_warehouse
    days = [LAST_DAY - dt.timedelta(days=n) for n in reversed(range(CHANGED_DAYS))]
    for n, day in enumerate(days):
        first_id = 10**12 + (round_ * CHANGED_DAYS + n) * rows_per_day * 2
        tables = day_tables(day, rows_per_day, vocab, rng, first_id=first_id)
        with DayWriter(root=str(root), day=day) as writer:
            for name, table in tables.items():
                writer.write(name, table)
            writer.commit()
    return days


def child_build(
    root: Path, *, changed: Sequence[dt.date] = (), rebuild: bool = False
) -> dict[str, Any]:
    """One ``build_warehouse`` in a fresh process (``bench.build_child``); its JSON line."""
    command = [sys.executable, "-m", "bench.build_child", "--warehouse", str(root)]
    if changed:
        command += ["--changed", *(d.isoformat() for d in changed)]
    if rebuild:
        command.append("--rebuild")
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"build_child failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    # progress on stderr: a long run shows its figures as they come
    print(
        f"  build of {root.name} ({'full' if result['full'] else 'incremental'}): "
        f"{result['seconds']:.1f} s, peak RSS {mib(result['peak_rss']):.0f} MiB",
        file=sys.stderr,
        flush=True,
    )
    return result


def _gib(n: float) -> float:
    return n / 2**30


def measure(scale: Scale) -> Section:
    section = Section(name="incremental", title="7 nightly build: incremental over the history")
    small_days, large_days = scale.history_days
    rows = scale.history_rows_per_day
    roots = {}
    generate: dict[str, float] = {}
    for label, days in (("small", small_days), ("large", large_days)):
        with Stopwatch() as watch:
            roots[label] = history(days, rows)
        generate[label] = round(watch.seconds, 1)
    # bring each file up to date with its history (a full build the first time)
    first = {label: child_build(root) for label, root in roots.items()}
    runs: dict[str, list[dict[str, Any]]] = {"small": [], "large": []}
    for round_ in range(max(2, scale.repeats) if scale.quick else ROUNDS):
        for label, root in roots.items():
            changed = rematerialize(root, rows, round_)
            runs[label].append(child_build(root, changed=changed))
    # a first build without a previous file is a full rebuild already: count it as one
    fulls = [first["large"]] if first["large"]["full"] else []
    fulls += [child_build(roots["large"], rebuild=True) for _ in range(max(0, 1 - len(fulls)))]

    def seconds(items: list[dict[str, Any]]) -> list[float]:
        return [r["seconds"] for r in items]

    instances = {label: r["rows"]["execution_instances"] for label, r in first.items()}
    section.detail = {
        "history_days": {"small": small_days, "large": large_days},
        "rows_per_day": rows,
        "instances": instances,
        "generate_seconds": generate,
        "first_build": first,
        "incremental": runs,
        "full_rebuild_large": fulls,
    }
    small_n, large_n = (f"{instances[k]:,}" for k in ("small", "large"))
    for label, n in (("small", small_n), ("large", large_n)):
        items = runs[label]
        copy = Spread.of([r["copy_seconds"] for r in items]).median
        peak = Spread.of([r["peak_rss"] for r in items]).median
        section.rows.append(
            Row(
                metric=f"build after re-materializing {CHANGED_DAYS} days, {n} instances",
                spread=Spread.of(seconds(items)),
                unit=" s",
                note=f"copy of the previous file {copy:.2f} s of it "
                f"({mib(items[-1]['file_bytes']):.0f} MiB); peak RSS {mib(peak):.0f} MiB",
            )
        )
    section.rows.append(
        Row(
            metric=f"incremental build: {large_n} history / {small_n} history",
            spread=Spread.of(ratios(seconds(runs["large"]), seconds(runs["small"]))),
            unit="×",
            target=Target("<=", 1.3),
        )
    )
    section.rows.append(
        Row(
            metric=f"incremental build / full rebuild, {large_n} instances",
            spread=Spread.of(
                [s / Spread.of(seconds(fulls)).median for s in seconds(runs["large"])]
            ),
            unit="×",
            note=f"full rebuild {Spread.of(seconds(fulls)).median:.1f} s, peak RSS "
            f"{mib(max(r['peak_rss'] for r in fulls)):.0f} MiB",
        )
    )
    section.rows.append(
        Row(
            metric=f"incremental build peak RSS: {large_n} / {small_n} history",
            spread=Spread.of(
                [
                    big["peak_rss"] / small["peak_rss"]
                    for big, small in zip(runs["large"], runs["small"], strict=True)
                ]
            ),
            unit="×",
            note=f"{mib(Spread.of([r['peak_rss'] for r in runs['small']]).median):.0f} MiB and "
            f"{mib(Spread.of([r['peak_rss'] for r in runs['large']]).median):.0f} MiB "
            f"(process floor {mib(runs['small'][0]['floor_rss']):.0f} MiB)",
        )
    )
    section.rows.append(
        Row(
            metric=f"copy-on-write copy / incremental build, {large_n} instances",
            spread=Spread.of([r["copy_seconds"] / r["seconds"] for r in runs["large"]]),
            unit="×",
        )
    )
    return section
