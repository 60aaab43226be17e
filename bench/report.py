"""The table on stdout and ``bench/results/latest.json``."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.core import Row, Section, cpu_count

PACKAGES = ("httpx", "aiohttp", "msgspec", "pyarrow", "pandas", "duckdb", "dagster", "dlt")


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def machine() -> dict[str, Any]:
    return {
        "cpus": cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": _versions(),
    }


def _number(value: float, unit: str) -> str:
    if unit in ("/s", " MiB", " ms"):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"
    if unit == "%":
        return f"{value:.2f}"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"


def _value(row: Row) -> tuple[str, str]:
    if row.spread is None:
        return (row.text or "", "")
    s = row.spread
    value = _number(s.median, row.unit) + row.unit
    spread = "" if s.runs == 1 else f"[{_number(s.min, row.unit)} – {_number(s.max, row.unit)}]"
    return value, spread


def _mark(row: Row) -> str:
    return {True: "PASS", False: "FAIL", None: ""}[row.passed]


def table(sections: Sequence[Section]) -> str:
    lines = []
    header = f"{'metric':<58} {'median':>12} {'[min – max]':>23}  {'target':<16} {'':4}"
    for section in sections:
        lines.append("")
        lines.append(f"== {section.title} ({section.seconds:.0f} s)")
        if section.error:
            lines.append(f"   ERROR: {section.error}")
            continue
        lines.append(header)
        for row in section.rows:
            value, spread = _value(row)
            target = row.target_text or (str(row.target) if row.target else "")
            lines.append(f"{row.metric:<58} {value:>12} {spread:>23}  {target:<16} {_mark(row):4}")
            if row.note:
                lines.append(f"{'':<4}{row.note}")
    return "\n".join(lines)


def summary(sections: Sequence[Section]) -> dict[str, Any]:
    rows = [(s, r) for s in sections for r in s.rows if r.passed is not None]
    missed = [f"{s.title}: {r.metric}" for s, r in rows if r.passed is False]
    errors = [f"{s.title}: {s.error}" for s in sections if s.error]
    return {
        "targets": len(rows),
        "passed": len(rows) - len(missed),
        "missed": missed,
        "errors": errors,
    }


def write_json(
    path: Path, sections: Sequence[Section], *, quick: bool, started: datetime, seconds: float
) -> None:
    doc = {
        "suite": "coc-warehouse bench (issue 4)",
        "command": "python -m bench" + (" --quick" if quick else ""),
        "quick": quick,
        "started_at": started.astimezone(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "machine": machine(),
        "summary": summary(sections),
        "measurements": {s.name: s.as_dict() for s in sections},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_compact(doc), indent=1, default=str, ensure_ascii=False)
    path.write_text(text + "\n")


def _compact(value: Any) -> Any:
    """Floats to 4 significant digits (6 below 1): the file stays small and diffable."""
    if isinstance(value, float):
        return float(f"{value:.4g}") if abs(value) >= 1 else float(f"{value:.6g}")
    if isinstance(value, dict):
        return {str(k): _compact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_compact(v) for v in value]
    return value
