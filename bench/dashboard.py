"""7. The dashboard over ~10M instances: one full refresh, and one ticket drill-down.

The synthetic warehouse of the marts measurement (``synthetic.py``) gets the real
``build_warehouse``. A refresh is what the page does on every rerun: open ``coc.duckdb``
read-only, read the filter options, run every panel's query for the default filters (the
last 7 days with data) and close. The drill-down is the two queries behind a picked ticket
(its batches, its failed instances), on one day's partition. Both are timed against the plain
failure-rate ``GROUP BY dt, region_id`` over ``execution_instances`` on an open connection,
the same baseline as the marts measurement: one warm-up each, then rounds of the three; the
ratio is taken per round.
"""

from __future__ import annotations

from bench.core import Row, Scale, Section, Spread, Stopwatch, Target, ratios, scratch_dir
from bench.marts import PLAIN, _fetch
from bench.synthetic import write_warehouse
from warehouse.build import build_warehouse, connect
from warehouse.dashboard import queries as q


def measure(scale: Scale) -> Section:
    section = Section(name="dashboard", title="7 dashboard refresh and drill-down")
    with scratch_dir("dashboard") as root:
        totals = write_warehouse(
            str(root), days=scale.mart_days, rows_per_day=scale.mart_rows_per_day
        )
        built = build_warehouse(warehouse=str(root), duckdb_path=str(root / "coc.duckdb"))
        path = built.duckdb_path

        def refresh() -> q.Refresh:
            con = q.open_warehouse(path)
            try:
                f = q.options(con).default_filters()
                assert f is not None
                return q.refresh(con, f)
            finally:
                con.close()

        first = refresh()  # warm-up, and the ticket to drill into
        ticket = first.tickets.iloc[0]
        day, uuid = ticket["dt"].date(), str(ticket["execute_uuid"])

        con = connect(path)
        try:

            def drill() -> int:
                return len(q.ticket_batches(con, day, uuid)) + len(
                    q.failed_instances(con, day, uuid)
                )

            plain_rows, drilled = _fetch(con, PLAIN), drill()  # warm-up
            seconds: dict[str, list[float]] = {"plain": [], "refresh": [], "drill": []}
            for _ in range(scale.repeats):
                for name, run in (
                    ("plain", lambda: _fetch(con, PLAIN)),
                    ("refresh", refresh),
                    ("drill", drill),
                ):
                    with Stopwatch() as watch:
                        run()
                    seconds[name].append(watch.seconds)
        finally:
            con.close()
    section.detail = {
        "rows": totals,
        "days": scale.mart_days,
        "seconds": seconds,
        "ticket": {"dt": day.isoformat(), "failed": int(ticket["failed"]), "rows": drilled},
        "plain_rows": plain_rows,
    }
    section.rows += [
        Row(
            metric=f"plain failure-rate GROUP BY over {totals['execution_instances']:,} rows",
            spread=Spread.of([s * 1000 for s in seconds["plain"]]),
            unit=" ms",
        ),
        Row(
            metric="dashboard refresh (open, options, every panel, close) / plain query",
            spread=Spread.of(ratios(seconds["refresh"], seconds["plain"])),
            unit="×",
            target=Target("<=", 0.5),
            note=f"{Spread.of(seconds['refresh']).median * 1000:,.0f} ms, marts only",
        ),
        Row(
            metric="ticket drill-down (batches + failed instances) / plain query",
            spread=Spread.of(ratios(seconds["drill"], seconds["plain"])),
            unit="×",
            target=Target("<=", 0.2),
            note=f"{Spread.of(seconds['drill']).median * 1000:,.0f} ms, one day's partition, "
            f"{drilled} rows",
        ),
    ]
    return section
