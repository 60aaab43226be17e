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


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_every_measurement_runs_quick(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COC_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
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
    assert set(doc["measurements"]) == set(MEASUREMENTS)
    for name, section in doc["measurements"].items():
        assert "error" not in section, name
        assert section["rows"], name
        for row in section["rows"]:
            assert "median" in row or "value" in row, (name, row)
    assert "targets met" in done.stdout
