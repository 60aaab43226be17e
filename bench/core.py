"""What every measurement shares: the run's scale, spreads of repeated runs, targets, rows."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCRATCH_DIR = RESULTS_DIR / "tmp"


@dataclass(frozen=True, kw_only=True)
class Scale:
    """How big and how often: the full suite, or ``--quick`` for a smoke test."""

    quick: bool
    repeats: int
    #: instances in the day of the unthrottled end-to-end and flatten measurements
    e2e_instances: int
    #: minimal requests of the rate-limited day (instances are picked to come close)
    rate_limited_minimal: int
    rate_limit_rps: float
    #: the two day sizes of the memory measurement
    rss_instances: tuple[int, int]
    #: synthetic warehouse of the marts measurement
    mart_days: int
    mart_rows_per_day: int
    #: the two synthetic histories of the incremental build measurement (days each)
    history_days: tuple[int, int]
    history_rows_per_day: int


FULL = Scale(
    quick=False,
    repeats=3,
    e2e_instances=250_000,
    rate_limited_minimal=2_000,
    rate_limit_rps=50.0,
    rss_instances=(100_000, 1_000_000),
    mart_days=30,
    mart_rows_per_day=333_334,
    history_days=(30, 300),
    history_rows_per_day=333_334,
)
QUICK = Scale(
    quick=True,
    repeats=1,
    e2e_instances=5_000,
    rate_limited_minimal=150,
    rate_limit_rps=50.0,
    rss_instances=(2_000, 20_000),
    mart_days=3,
    mart_rows_per_day=20_000,
    history_days=(3, 30),
    history_rows_per_day=5_000,
)


@dataclass(frozen=True)
class Spread:
    """Median, min and max of repeated runs."""

    median: float
    min: float
    max: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("a spread needs at least one run")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def as_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.min, "max": self.max, "runs": self.runs}


_OPS: dict[str, Callable[[float, float], bool]] = {
    "=": lambda value, bound: round(value, 3) == round(bound, 3),
    "<=": lambda value, bound: value <= bound,
    ">=": lambda value, bound: value >= bound,
    "<": lambda value, bound: value < bound,
}
_SHOWN = {"=": "=", "<=": "≤", ">=": "≥", "<": "<"}


@dataclass(frozen=True)
class Target:
    """A bound from the issue, checked against a row's median."""

    op: str
    bound: float
    unit: str = ""

    def met(self, value: float) -> bool:
        return _OPS[self.op](value, self.bound)

    def __str__(self) -> str:
        bound = f"{self.bound:.3f}" if self.op == "=" else f"{self.bound:g}"
        return f"{_SHOWN[self.op]} {bound}{self.unit}"


@dataclass(kw_only=True)
class Row:
    """One line of the table: a measured value (usually a spread), its unit and target."""

    metric: str
    spread: Spread | None = None
    text: str | None = None  # a non-numeric result, e.g. "1 of 30 files"
    unit: str = ""
    target: Target | None = None
    passed_override: bool | None = None  # for targets that are not a bound on the median
    target_text: str | None = None
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.passed_override is not None:
            return self.passed_override
        if self.target is None or self.spread is None:
            return None
        return self.target.met(self.spread.median)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric, "unit": self.unit}
        if self.spread is not None:
            out.update(self.spread.as_dict())
        if self.text is not None:
            out["value"] = self.text
        target = self.target_text or (str(self.target) if self.target else None)
        if target is not None:
            out["target"] = target
            out["passed"] = self.passed
        if self.note:
            out["note"] = self.note
        return out


@dataclass(kw_only=True)
class Section:
    """What one measurement reports: table rows, and the raw numbers behind them."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "title": self.title,
            "seconds": round(self.seconds, 1),
            "rows": [r.as_dict() for r in self.rows],
            "detail": self.detail,
        }
        if self.error:
            out["error"] = self.error
        return out


class Stopwatch:
    """``with Stopwatch() as w: ...`` then ``w.seconds`` (monotonic wall time)."""

    def __enter__(self) -> Stopwatch:
        self.seconds = 0.0
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self._start


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A fresh folder under ``bench/results/tmp`` (on the same disk as a real warehouse),
    removed afterwards."""
    SCRATCH_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=SCRATCH_DIR))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Run-by-run ratios of two measurements interleaved in the same rounds."""
    return [n / d for n, d in zip(numerators, denominators, strict=True)]


def peak_rss_bytes() -> int:
    """This process's peak resident set (``VmHWM``).

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries that figure across ``execve``,
    so a child started from a big parent reports the parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_bytes() -> int:
    """This process's resident set now (``VmRSS``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
