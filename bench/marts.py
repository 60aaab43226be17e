"""6. The marts over ~10M rows, and what a one-day filter reads.

The marts are computed once per ``build_warehouse`` into ``mart_data`` tables that the mart
views read; so each mart is timed twice: a dashboard's query of the view (graded), and the
time the build spent computing it (reported beside it, no target).

A synthetic warehouse (``synthetic.py``: ~30 days × ~333k instances, the real layout and
schemas, written by the product's ``DayWriter``) gets the real ``build_warehouse``. Then,
on one read-only connection, every mart in ``warehouse/sql/marts`` is materialized in full
(``SELECT *`` fetched to Arrow, so no column or aggregate can be optimized away) against a
plain failure-rate ``GROUP BY dt, region_id`` over ``execution_instances``: one warm-up
each, then rounds of all of them; the ratio is taken per round.

For the one-day filter, DuckDB's own profile (``EXPLAIN (ANALYZE, FORMAT JSON)``) gives the
files each Parquet scan opened (``Scanning Files: k/n``, their names) and the bytes read,
compared with the size of that day's files and of the whole table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb

from bench.core import Row, Scale, Section, Spread, Stopwatch, Target, mib, ratios, scratch_dir
from bench.synthetic import write_warehouse
from warehouse.build import MARTS_DIR, build_warehouse, connect

OUTCOME = "status IN ('FINISHED', 'ABNORMAL', 'ROLLBACKED')"
PLAIN = f"""
SELECT dt, region_id,
       count(*) FILTER (WHERE {OUTCOME}) AS instances,
       count(*) FILTER (WHERE status = 'ABNORMAL') AS failed,
       CAST(count(*) FILTER (WHERE status = 'ABNORMAL') AS DOUBLE)
           / nullif(count(*) FILTER (WHERE {OUTCOME}), 0) AS failure_rate
FROM execution_instances
GROUP BY dt, region_id
"""
ONE_DAY = f"""
SELECT region_id,
       count(*) FILTER (WHERE {OUTCOME}) AS instances,
       count(*) FILTER (WHERE status = 'ABNORMAL') AS failed
FROM execution_instances
WHERE dt = DATE '{{day}}'
GROUP BY region_id
"""
_SCANNING = re.compile(r"(\d+)\s*/\s*(\d+)")


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """Run ``sql`` and materialize the whole result as Arrow; returns its row count."""
    relation = con.sql(sql)
    to_arrow = getattr(relation, "to_arrow_table", None) or relation.arrow
    return to_arrow().num_rows


def mart_names() -> list[str]:
    return [path.stem for path in sorted(MARTS_DIR.glob("*.sql"))]


def _scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    info = node.get("extra_info") or {}
    if isinstance(info, dict) and info.get("Function") == "READ_PARQUET":
        found.append(node)
    for child in node.get("children", []):
        found += _scans(child)
    return found


def profile_scans(
    con: duckdb.DuckDBPyConnection, sql: str, root: Path | None = None
) -> dict[str, Any]:
    """Files and bytes the Parquet scans of ``sql`` read, from DuckDB's JSON profile
    (file names relative to ``root``, shown as ``<warehouse>``)."""
    plan = con.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql).fetchall()[0][1]
    doc = json.loads(plan)
    scans = []
    for node in _scans({"children": doc.get("operator", [])} if "operator" in doc else doc):
        info = node["extra_info"]
        scanning = _SCANNING.search(str(info.get("Scanning Files", "")))
        names = str(info.get("Filename(s)", ""))
        if root is not None:
            names = names.replace(str(root.resolve()), "<warehouse>")
        scans.append(
            {
                "scanning_files": info.get("Scanning Files"),
                "files_read": int(scanning.group(1)) if scanning else None,
                "files_total": int(scanning.group(2)) if scanning else None,
                "filenames": [n.strip() for n in re.split(r"[\n,]", names) if n.strip()],
                "file_filters": info.get("File Filters"),
                "bytes_scanned": node.get("bytes_scanned"),
                "rows_scanned": node.get("rows_scanned"),
            }
        )
    return {"bytes_read": (doc.get("io") or {}).get("total_bytes_read"), "scans": scans}


def _operators(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    if "timing" in node and node.get("operator_type", node.get("type")) not in (
        "EXPLAIN_ANALYZE",
        "RESULT_COLLECTOR",
        None,
    ):
        info = node.get("extra_info") or {}
        hint: Any = ""
        if isinstance(info, dict):
            hint = (
                info.get("Aggregates")
                or info.get("Projections")
                or info.get("Join Type")
                or info.get("Function")
                or ""
            )
        if isinstance(hint, list):
            hint = ", ".join(map(str, hint))
        found.append(
            {
                "operator": node.get("operator_name") or node.get("name"),
                "seconds": float(node["timing"]),
                "rows": node.get("operator_cardinality", node.get("intermediate_rows")),
                "what": str(hint).replace("\n", " ")[:160],
            }
        )
    for child in node.get("children", []):
        found += _operators(child)
    return found


def hot_operators(con: duckdb.DuckDBPyConnection, sql: str, top: int = 4) -> list[dict[str, Any]]:
    """The operators that took longest in DuckDB's profile of ``sql`` (summed over threads)."""
    doc = json.loads(con.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql).fetchall()[0][1])
    roots = doc.get("operator") or doc.get("children") or []
    operators = [op for root in roots for op in _operators(root)]
    return sorted(operators, key=lambda op: op["seconds"], reverse=True)[:top]


def _table_bytes(root: Path, table: str, day: str | None = None) -> int:
    folder = f"dt={day}" if day else "dt=*"
    return sum(p.stat().st_size for p in (root / table).glob(f"{folder}/*.parquet"))


def _one_day_rows(
    con: duckdb.DuckDBPyConnection, root: Path, day: str
) -> tuple[list[Row], dict[str, Any]]:
    day_bytes = _table_bytes(root, "execution_instances", day)
    all_bytes = _table_bytes(root, "execution_instances")
    filtered = profile_scans(con, ONE_DAY.format(day=day), root)
    unfiltered = profile_scans(con, ONE_DAY.replace("WHERE dt = DATE '{day}'", ""), root)
    checks = {
        "failure_rates_daily": f"SELECT * FROM failure_rates_daily WHERE dt = DATE '{day}'",
        "ticket_outcomes": f"SELECT * FROM ticket_outcomes WHERE dt = DATE '{day}'",
    }
    marts = {name: profile_scans(con, sql, root) for name, sql in checks.items()}
    detail = {
        "day": day,
        "day_file_bytes": day_bytes,
        "table_file_bytes": all_bytes,
        "one_day_query": filtered,
        "same_query_all_days": unfiltered,
        "marts_filtered_to_one_day": marts,
    }
    rows = []
    for name, found in (("plain query", filtered), *marts.items()):
        scans = found["scans"]
        # a mart reads its table in mart_data (computed at build): no Parquet at all is fine
        only_day = (not scans and name != "plain query") or (
            bool(scans)
            and all(
                s["files_read"] is not None
                and s["files_read"] <= 1
                and all(f"/dt={day}/" in f for f in s["filenames"])
                for s in scans
            )
        )
        files = ", ".join(s["scanning_files"] or "?" for s in scans) or "none (mart_data table)"
        read = found["bytes_read"] or 0
        rows.append(
            Row(
                metric=f"WHERE dt = one day, {name}: files scanned",
                text=files,
                target_text="that day's only",
                passed_override=only_day,
                note=(
                    f"{mib(read):.2f} MiB read of {mib(day_bytes):.1f} MiB that day, "
                    f"{mib(all_bytes):.0f} MiB in all"
                    if name == "plain query"
                    else f"{mib(read):.2f} MiB read"
                ),
            )
        )
    rows.append(
        Row(
            metric="one-day bytes read / all-days bytes read (plain query)",
            spread=Spread.of([(filtered["bytes_read"] or 0) / (unfiltered["bytes_read"] or 1)]),
            unit="×",
            note=f"{mib(unfiltered['bytes_read'] or 0):.1f} MiB read without the filter",
        )
    )
    return rows, detail


def _hottest(operators: list[dict[str, Any]]) -> str:
    if not operators:
        return ""
    total = sum(op["seconds"] for op in operators) or 1.0
    op = operators[0]
    return f"hottest: {op['operator']} {op['what'][:50]} ({op['seconds'] / total:.0%} of the top)"


def measure(scale: Scale) -> Section:
    section = Section(name="marts", title="6 marts over the warehouse")
    with scratch_dir("marts") as root:
        with Stopwatch() as generating:
            totals = write_warehouse(
                str(root), days=scale.mart_days, rows_per_day=scale.mart_rows_per_day
            )
        builds = []
        for _ in range(max(1, scale.repeats)):
            with Stopwatch() as building:
                built = build_warehouse(warehouse=str(root), duckdb_path=str(root / "coc.duckdb"))
            builds.append((building.seconds, dict(built.mart_seconds)))
        con = connect(built.duckdb_path)
        try:
            queries = {"plain": PLAIN} | {name: f"SELECT * FROM {name}" for name in mart_names()}
            result_rows = {name: _fetch(con, sql) for name, sql in queries.items()}  # warm-up
            seconds: dict[str, list[float]] = {name: [] for name in queries}
            for _ in range(scale.repeats):
                for name, sql in queries.items():
                    with Stopwatch() as watch:
                        _fetch(con, sql)
                    seconds[name].append(watch.seconds)
            profiles = {name: hot_operators(con, sql) for name, sql in queries.items()}
            day = con.execute("SELECT max(dt) FROM execution_instances").fetchone()[0].isoformat()
            one_day_rows, one_day = _one_day_rows(con, root, day)
        finally:
            con.close()
    section.detail = {
        "rows": totals,
        "days": scale.mart_days,
        "generate_seconds": round(generating.seconds, 1),
        "result_rows": result_rows,
        "seconds": seconds,
        "hot_operators": profiles,
        "build_seconds": [round(b[0], 3) for b in builds],
        "mart_compute_seconds": [b[1] for b in builds],
        "one_day_filter": one_day,
    }
    section.rows.append(
        Row(
            metric=f"plain failure-rate GROUP BY over {totals['execution_instances']:,} rows",
            spread=Spread.of([s * 1000 for s in seconds["plain"]]),
            unit=" ms",
        )
    )
    for name in queries:
        if name == "plain":
            continue
        section.rows.append(
            Row(
                metric=f"{name} / plain query",
                spread=Spread.of(ratios(seconds[name], seconds["plain"])),
                unit="×",
                target=Target("<=", 2.0),
                note=f"{Spread.of(seconds[name]).median * 1000:,.0f} ms, "
                f"{result_rows[name]:,} rows; " + _hottest(profiles[name]),
            )
        )
    plain = Spread.of(seconds["plain"]).median
    for name in queries:
        if name == "plain":
            continue
        computed = [b[1][name] for b in builds if name in b[1]]
        section.rows.append(
            Row(
                metric=f"{name}: computed once per build / plain query",
                spread=Spread.of([c / plain for c in computed]),
                unit="×",
                note=f"{Spread.of(computed).median * 1000:,.0f} ms in build_warehouse "
                "(the cost a live view would pay on every query)",
            )
        )
    section.rows.append(
        Row(
            metric="build_warehouse (views + every mart computed)",
            spread=Spread.of([b[0] for b in builds]),
            unit=" s",
        )
    )
    section.rows += one_day_rows
    return section
