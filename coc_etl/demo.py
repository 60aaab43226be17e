"""``make demo``: the embedded simulator, the last N days through Dagster, a DuckDB report.

Runs the contract's own command (``dagster asset materialize -m pipelines.definitions
--select '*' --partition-range ...``) in a subprocess against the simulator on loopback,
signing every request with AK/SK, then reads the marts back through DuckDB.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipelines.variables import process_env
from warehouse.report import (
    failure_report,
    format_alerts,
    format_hotspots,
    format_open_episodes,
    format_report,
    newest_alerts,
)

DEMO_AK = "DEMOACCESSKEY"
#: the zone the demo's data plants a failure onset in, two days before the last day: an alert
#: episode still open at the end of the demo
DEMO_ONSET_ZONE = "cn-north-4b"


def materialize_command(*partitions: str) -> list[str]:
    """The contract's command, with this environment's ``dagster``: every asset of
    ``pipelines.definitions`` for ``partitions`` (``--partition D`` or ``--partition-range``)."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    selection = ["-m", "pipelines.definitions", "--select", "*"]
    return [dagster, "asset", "materialize", *selection, *partitions]


_SHOWN = (" - coc_day - ", " - coc_warehouse - ")


def _step(label: str, started: float) -> float:
    now = time.monotonic()
    print(f"  done in {now - started:.1f}s: {label}", flush=True)
    return now


def run_demo(*, base: str, days: int = 7, seed: int = 7) -> int:
    from coc_simulator import SimConfig, SimulatorServer, ZoneOnset

    root = Path(base).resolve()
    warehouse = root / "warehouse"
    dagster_home = root / "dagster_home"
    logs = root / "logs"
    for folder in (warehouse, dagster_home, logs):
        folder.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    sk = secrets.token_hex(16)  # a throwaway key: the simulator checks every signature
    total_started = time.monotonic()

    print("1/3 starting the embedded COC simulator on loopback", flush=True)
    started = time.monotonic()
    last = datetime.now(UTC).date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    onset = ZoneOnset(zone=DEMO_ONSET_ZONE, day=last - timedelta(days=2), failure=0.15)
    with SimulatorServer(SimConfig(seed=seed, onsets=(onset,)), ak=DEMO_AK, sk=sk) as sim:
        started = _step(f"simulator at {sim.url} (AK/SK signatures verified)", started)
        print(f"2/3 materializing {first}...{last} with Dagster", flush=True)
        parent = process_env()  # the child's environment: this one, with the demo's settings
        env = {
            **parent,
            "COC_ENDPOINT": sim.url,
            "COC_AK": DEMO_AK,
            "COC_SK": sk,
            "COC_WAREHOUSE": str(warehouse),
            "COC_MAX_RPS": parent.get("COC_MAX_RPS", "0"),
            "DAGSTER_HOME": str(dagster_home),
        }
        env.pop("COC_TOKEN", None)
        env.pop("COC_DUCKDB", None)
        env.pop("COC_TIMEZONE", None)
        command = materialize_command("--partition-range", f"{first}...{last}")
        log_path = logs / "materialize.log"
        code = _run_streaming(command, env, log_path)
        if code != 0:
            print(f"materialization failed (exit {code}); the full log is {log_path}")
            return code
        started = _step(f"{days} partitions, {sim.stats.total} requests served", started)

    duckdb_path = warehouse / "coc.duckdb"
    print("3/3 failure rates, read back through DuckDB", flush=True)
    print()
    print(format_report(failure_report(str(duckdb_path), days=days, by="region"), by="region"))
    print()
    print(format_hotspots(str(duckdb_path), days=days))
    print()
    print(format_alerts(*newest_alerts(str(duckdb_path))))
    print()
    print(format_open_episodes(str(duckdb_path)))
    print(f"  (planted: zone {DEMO_ONSET_ZONE} failing 15% more from {onset.day})")
    print()
    _step("report", started)
    print(f"total {time.monotonic() - total_started:.1f}s")
    print()
    print(f"Delta:    {warehouse}/<table>/ (Delta Lake tables, Parquet by dt=YYYY-MM-DD)")
    print(f"DuckDB:   {duckdb_path}")
    print(
        f"          .venv/bin/python -c \"import duckdb; print(duckdb.connect('{duckdb_path}', "
        "read_only=True).sql('SELECT * FROM failure_rates_daily LIMIT 10'))\""
    )
    print(f"Run log:  {log_path}")
    print("Dagster UI on the same runs and data:")
    print(f"          DAGSTER_HOME={dagster_home} COC_WAREHOUSE={warehouse} \\")
    print("          .venv/bin/dagster dev -w workspace.yaml")
    print("          (to materialize from the UI, start `.venv/bin/coc-etl simulator --port 8765`")
    print("          and add COC_ENDPOINT=http://127.0.0.1:8765 to that command)")
    dashboard = ".venv/bin/coc-etl dashboard"
    if duckdb_path != Path(".demo", "warehouse", "coc.duckdb").resolve():
        dashboard += f" --duckdb {duckdb_path}"  # not where it looks without variables
    print("Dashboard (read-only, loopback), then open http://127.0.0.1:8501 in a browser:")
    print(f"          {dashboard}")
    print("Alerts to a webhook (Slack, Feishu/Lark, WeCom, DingTalk, JSON) or e-mail, after")
    print("each coc-etl run or Dagster run (docs/alerts.md):")
    print(
        '          COC_ALERT_CHANNELS=\'[{"type": "slack", "url": '
        '"https://hooks.slack.com/services/..."}]\' .venv/bin/coc-etl warehouse'
    )
    return 0


def _run_streaming(command: list[str], env: dict[str, str], log_path: Path) -> int:
    """Run ``command``; keep its whole output in ``log_path``, show our progress lines."""
    with (
        open(log_path, "w", encoding="utf-8") as log,
        subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if " - INFO - " in line and any(s in line for s in _SHOWN):
                print("  " + line.rstrip().split(" - ")[-1], flush=True)
            elif " - ERROR - " in line:
                print("  " + line.rstrip(), flush=True)
        return process.wait()
