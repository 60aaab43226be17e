"""The environment of a `coc-etl` or `dagster` process a test starts on the simulator."""

from __future__ import annotations

import os
from pathlib import Path

from coc_simulator.server import SimulatorServer


def cli_env(
    sim: SimulatorServer, warehouse: Path, *, ak: str, sk: str, **extra: str
) -> dict[str, str]:
    """This process's environment less every ``COC_``/``DAGSTER_`` variable, then the run's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COC_", "DAGSTER_"))}
    home = warehouse.parent / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        COC_ENDPOINT=sim.url,
        COC_AK=ak,
        COC_SK=sk,
        COC_WAREHOUSE=str(warehouse),
        COC_MAX_RPS="0",
        DAGSTER_HOME=str(home),
    )
    env.update(extra)
    return env
