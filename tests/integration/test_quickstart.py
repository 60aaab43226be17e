"""The README's quickstart runs as written, after the demo, with no variable set.

The commands are read from the README itself (between ``<!-- quickstart -->`` markers) and
run by bash in a fresh folder holding a link to this environment's ``.venv`` and the demo's
warehouse, made there by the real ``coc-etl demo``. Only the two ports are changed, to free
ones, so that tests running beside this one cannot collide with it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.bi.server import clean_env, free_port

REPO = Path(__file__).parents[2]
VENV = Path(sys.executable).parents[1]
START, END = "<!-- quickstart -->", "<!-- /quickstart -->"

pytestmark = pytest.mark.slow


def quickstart_lines(readme: str) -> list[str]:
    """The shell lines between the markers, fences and blank lines left out."""
    block = readme.split(START, 1)[1].split(END, 1)[0]
    return [line for line in block.strip().splitlines() if line.strip() and "```" not in line]


def test_the_readme_has_a_quickstart_block() -> None:
    lines = quickstart_lines((REPO / "README.md").read_text())
    assert any(line.startswith(".venv/bin/coc-etl report") for line in lines)
    assert any(" ingest " in line for line in lines)
    assert lines[-1].startswith(".venv/bin/coc-etl dashboard")


def test_quickstart_runs_as_written_after_the_demo(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(VENV)
    env = clean_env()
    demo = subprocess.run(
        [str(VENV / "bin" / "coc-etl"), "demo", "--days", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]

    lines = quickstart_lines((REPO / "README.md").read_text())
    simulator_port, dashboard_port = str(free_port()), str(free_port())
    lines = [
        re.sub(r"\b8501\b", dashboard_port, re.sub(r"\b8765\b", simulator_port, line))
        for line in lines
    ]
    *commands, dashboard = lines
    script = "set -euo pipefail\n" + "\n".join(commands) + "\nwait || true\n"
    run = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # the report with no variable set read the demo's warehouse
    assert "Failure rate by zone" in run.stdout
    # the SQL line printed host_failures' columns
    assert "resource_id" in run.stdout and "failure_rate" in run.stdout
    # the ingest against the simulator published the day and updated coc.duckdb
    assert "warehouse:" in run.stderr + run.stdout
    assert re.search(r"\d{4}-\d{2}-\d{2}: \d+ tickets", run.stderr + run.stdout)

    log = tmp_path / "dashboard.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", "exec " + dashboard.split("#", 1)[0]],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()[-2000:]
            try:
                url = f"http://127.0.0.1:{dashboard_port}/_stcore/health"
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
