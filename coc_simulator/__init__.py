"""The embedded COC simulator: seeded script orders served over loopback HTTP.

catalog.py    scripts, hosts, failure patterns and message templates
onsets.py     planted onsets: a zone, host, script version or message going bad on a day
model.py      the shared types and constants: SimConfig, Ticket, Batch, Run, status codes
plan.py       every ticket's creation, script, batches, fate and ids
execution.py  how one ticket runs, drawn lazily from its seed
data.py       Dataset and its truth API (what each endpoint answers at ``now``)
scenarios.py  the planted-shifts scenario that failure_shifts' tests and bench share
faults.py     injectable faults: 429, 5xx, drops, latency, forced statuses, stuck markers
stats.py      request counters
app.py        the raw ASGI app of the five GET endpoints
server.py     SimulatorServer (thread), serve_forever (CLI), start_subprocess (benchmarks)
cli.py        ``coc-etl simulator`` / ``python -m coc_simulator``

Each module imports only modules above it in this list, so there is no import circle; the
pipeline never imports this package: the demo, ``coc-etl simulator`` and the tests do.
"""

from coc_simulator.data import Dataset
from coc_simulator.faults import Faults
from coc_simulator.model import SimConfig
from coc_simulator.onsets import HostOnset, MessageOnset, Onset, VersionOnset, ZoneOnset
from coc_simulator.server import SimulatorServer, start_subprocess, stop_subprocess
from coc_simulator.stats import Stats

__all__ = [
    "Dataset",
    "Faults",
    "HostOnset",
    "MessageOnset",
    "Onset",
    "SimConfig",
    "SimulatorServer",
    "Stats",
    "VersionOnset",
    "ZoneOnset",
    "start_subprocess",
    "stop_subprocess",
]
