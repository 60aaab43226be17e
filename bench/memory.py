"""5. Peak RSS of the ingestion at 100k and at 1M instances in a day.

Each run is the plain function path in a fresh child process (``bench.rss_child``) against a
simulator in another process, so that neither the bench's own memory (Dagster, dlt, cached
pages) nor the simulator's counts. The ingestion runs in one process, but the bench does
not take that on trust: it follows the child's whole process tree every 20 ms and reports,
as the peak, the sum over its processes of each one's high-water mark (``VmHWM``), an upper
bound of what the tree held at once (with one process, that process's own peak); a second
process, if one appeared, would show in the notes. The floor is the child's RSS right after
its imports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from bench.core import Row, Scale, Section, Spread, Target, mib, ratios, scratch_dir
from bench.day import DAY, simulator_process, sized_day

LIMIT_MIB = 300
SAMPLE_S = 0.02


def _vm_hwm(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class TreeMemory:
    """Samples a process and its descendants: per-process peaks, simultaneous sums."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.hwm: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.max_rss_sum = 0
        self.max_pss_sum = 0
        self._samples = 0

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
            root_cmdline = self.root.cmdline()
        except psutil.Error:
            return
        rss = pss = 0
        with_pss = self._samples % 5 == 0  # smaps_rollup costs more than status
        self._samples += 1
        for proc in procs:
            try:
                cmdline = proc.cmdline()
                if proc.pid != self.root.pid and cmdline == root_cmdline:
                    continue  # forked, not yet exec'd: still the parent's memory
                rss += proc.memory_info().rss
                if with_pss:
                    pss += proc.memory_full_info().pss
            except psutil.Error:
                continue
            self.names.setdefault(proc.pid, " ".join(cmdline)[-80:])
            hwm = _vm_hwm(proc.pid)
            if hwm is not None:  # the latest: VmHWM only grows within one program
                self.hwm[proc.pid] = hwm
        self.max_rss_sum = max(self.max_rss_sum, rss)
        self.max_pss_sum = max(self.max_pss_sum, pss)

    @property
    def hwm_sum(self) -> int:
        return sum(self.hwm.values())


def _child(endpoint: str, warehouse: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.rss_child",
        "--endpoint",
        endpoint,
        "--day",
        DAY.isoformat(),
        "--warehouse",
        str(warehouse),
    ]
    out, err = warehouse.with_suffix(".out"), warehouse.with_suffix(".err")
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
        tree = TreeMemory(process.pid)
        deadline = time.monotonic() + 900
        while process.poll() is None:
            tree.sample()
            if time.monotonic() > deadline:
                process.kill()
            time.sleep(SAMPLE_S)
    if process.returncode != 0:
        raise RuntimeError(f"rss child failed ({process.returncode}): {err.read_text()[-2000:]}")
    found = json.loads(out.read_text().strip().splitlines()[-1])
    main_hwm = found["peak_rss"]
    others = {pid: v for pid, v in tree.hwm.items() if pid != process.pid}
    found.update(
        processes=1 + len(others),
        main_peak_rss=main_hwm,
        workers_peak_rss=sum(others.values()),
        tree_peak_rss=main_hwm + sum(others.values()),
        sampled_rss_sum=tree.max_rss_sum,
        sampled_pss_sum=tree.max_pss_sum,
        worker_names=[tree.names.get(pid, "?") for pid in others],
    )
    return found


def measure(scale: Scale) -> Section:
    section = Section(name="memory", title="5 peak RSS of the ingestion")
    small, large = scale.rss_instances
    runs: dict[str, list[dict[str, Any]]] = {}
    with scratch_dir("memory") as root:
        for size in (small, large):
            expected = sized_day(size).instances
            with simulator_process(size, log=root / f"simulator-{size}.log") as simulator:
                for n in range(scale.repeats):
                    warehouse = root / f"wh-{size}-{n}"
                    found = _child(simulator.url, warehouse)
                    found["complete"] = found["rows"] == expected
                    runs.setdefault(str(size), []).append(found)
                    shutil.rmtree(warehouse, ignore_errors=True)
    section.detail = {"instances": [small, large], "runs": runs}
    floors = [mib(r["floor_rss"]) for found in runs.values() for r in found]
    section.rows.append(
        Row(metric="RSS right after imports (floor)", spread=Spread.of(floors), unit=" MiB")
    )
    peaks = {size: [mib(r["tree_peak_rss"]) for r in runs[str(size)]] for size in (small, large)}
    for size in (small, large):
        found = runs[str(size)]
        mid = sorted(found, key=lambda r: r["tree_peak_rss"])[len(found) // 2]
        complete = all(r["complete"] for r in found)
        rate = Spread.of([r["rows"] / r["seconds"] for r in found]).median
        note = f"{mid['processes']} process(es)"
        if mid["processes"] > 1:
            note += (
                f": main {mib(mid['main_peak_rss']):.0f} + workers "
                f"{mib(mid['workers_peak_rss']):.0f} MiB; sampled together: "
                f"RSS {mib(mid['sampled_rss_sum']):.0f}, "
                f"PSS {mib(mid['sampled_pss_sum']):.0f} MiB"
            )
        note += f"; {rate:,.0f} instances/s" + ("" if complete else "; ROWS MISSING OR EXTRA")
        section.rows.append(
            Row(
                metric=f"peak RSS at {size:,} instances",
                spread=Spread.of(peaks[size]),
                unit=" MiB",
                target=Target("<", LIMIT_MIB, " MiB") if size == large else None,
                passed_override=None if complete else False,
                note=note,
            )
        )
    section.rows.append(
        Row(
            metric=f"peak RSS {large:,} / {small:,}",
            spread=Spread.of(ratios(peaks[large], peaks[small])),
            unit="×",
            target=Target("<=", 1.2),
        )
    )
    return section
