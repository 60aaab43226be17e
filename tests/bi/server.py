"""Run the real ``coc-etl dashboard`` process for the tests; drive Debian's chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.setup_lock import APT_LOCK, setup_lock

COC_ETL = Path(sys.executable).with_name("coc-etl")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parents[1] / "artifacts"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COC_", "DAGSTER_"))}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def dashboard(
    duckdb_path: Path | None, *, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """``coc-etl dashboard`` on a free loopback port until the block ends; yields its URL."""
    port = free_port()
    command = [str(COC_ETL), "dashboard", "--port", str(port)]
    if duckdb_path is not None:
        command += ["--duckdb", str(duckdb_path)]
    log = cwd / f"dashboard-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env or clean_env(), stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"dashboard exited {process.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dashboard did not answer in 90s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


def ensure_chromium() -> str:
    """Debian's chromium (and a CJK font for the hosts' names), installed when missing (CI is
    a fresh machine); never Playwright's own browser download."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get update && apt-get install -y chromium")
    with setup_lock(APT_LOCK):  # another test worker may be installing right now
        if Path(CHROMIUM).exists():
            return CHROMIUM
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["update", "-q"],
            ["install", "-y", "-q", "chromium", "fonts-wqy-microhei"],
        ):
            # and wait for dpkg's own lock rather than fail when something else holds it
            subprocess.run(
                ["apt-get", "-o", "DPkg::Lock::Timeout=600", *command],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
    return CHROMIUM
