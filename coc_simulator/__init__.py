"""The embedded COC simulator: seeded script orders served over loopback HTTP.

data.py       SimConfig, Dataset and its truth API (what each endpoint answers at ``now``)
catalog.py    scripts, hosts, failure patterns and message templates
execution.py  how one ticket runs, drawn lazily from its seed
app.py        the raw ASGI app of the five GET endpoints
faults.py     injectable faults: 429, 5xx, drops, latency, forced statuses, stuck markers
stats.py      request counters
server.py     SimulatorServer (thread), serve_forever (CLI), start_subprocess (benchmarks)
cli.py        ``coc-etl simulator`` / ``python -m coc_simulator``
"""

from coc_simulator.data import Dataset, SimConfig
from coc_simulator.faults import Faults
from coc_simulator.server import SimulatorServer, start_subprocess, stop_subprocess
from coc_simulator.stats import Stats

__all__ = [
    "Dataset",
    "Faults",
    "SimConfig",
    "SimulatorServer",
    "Stats",
    "start_subprocess",
    "stop_subprocess",
]
