"""``python -m bench --quick`` runs every measurement end to end at tiny sizes.

A smoke test of the benchmark suite, not of performance: it checks that each measurement
runs and reports numbers, never what they are (speed is measured in ``bench/``, never
asserted in tests). Skipped where the ``bench`` extra (dlt, psutil) is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dlt", reason="the bench extra is not installed: pip install -e '.[bench]'")

REPO = Path(__file__).resolve().parents[2]
MEASUREMENTS = (
    "request_efficiency",
    "rate_limited",
    "end_to_end",
    "flatten_write",
    "memory",
    "marts",
    "dashboard",
    "failure_shifts",
)
#: ``--quick --only`` in three parts of about the same length, so that the test workers run
#: them side by side; flatten_write stays after end_to_end, whose pages it writes
PARTS = (
    ("request_efficiency", "rate_limited", "marts"),
    ("end_to_end", "flatten_write", "dashboard"),
    ("memory", "failure_shifts"),
)


def test_the_parts_are_what_a_plain_quick_run_measures() -> None:
    from bench.__main__ import NAMES, NOT_QUICK

    assert [n for n in NAMES if n not in NOT_QUICK] == list(MEASUREMENTS)
    assert sorted(n for part in PARTS for n in part) == sorted(MEASUREMENTS)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("part", PARTS, ids=lambda part: "+".join(part))
def test_every_measurement_runs_quick(part: tuple[str, ...], tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COC_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", *part, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["quick"] is True
    assert doc["summary"]["errors"] == []
    assert set(doc["measurements"]) == set(part)
    for name, section in doc["measurements"].items():
        assert "error" not in section, name
        assert section["rows"], name
        for row in section["rows"]:
            assert "median" in row or "value" in row, (name, row)
    assert "targets met" in done.stdout
