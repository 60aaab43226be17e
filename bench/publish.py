"""Publishing a day on Delta tables against the path it replaced, and the build over each.

    python -m bench.publish [--rows 250000] [--days 3] [--rounds 6] [--repeat 5]
                            [--baseline REF] [--also REF ...] [--cpu N] [--profile FOLDER]

The same synthetic day of ``--rows`` instances (``bench/synthetic.py``) is published, then
re-published, through the product's ``DayWriter``, and ``coc.duckdb`` is built over it, by
trees of code side by side in the same run: this one (Delta commits, pinned views),
``--baseline`` (a git reference of the code before: its ``pipelines`` and ``warehouse``
exported to a temporary folder; by default the branch point of the Delta tables, with the
folder swap and day manifests) and any ``--also`` reference (e.g. the last commit before the
Delta tables were merged, to tell what the tables cost from what other work added).

Each measurement is a fresh process (``bench/publish_child.py``) on a fresh local warehouse,
pinned to one CPU if asked (``--cpu N``: the same for every tree; by default the children
run where the scheduler puts them: on a loaded machine a pinned child waits for its one CPU,
and its wall time says more about the queue than about the code). Every round runs each
tree once, in an order that alternates from round to round, so load that comes and goes
falls on every side. In each child the publish and the re-publish, short beside the
machine's noise, run ``--repeat`` times and count as their median. Each step is measured as
wall seconds and as CPU seconds of the child (user + system, every thread): CPU time depends
far less on what else runs on the machine and is a fair measure of what a step costs. For
each step the ratio (this tree / baseline) is taken within each round; the result is the
median of those ratios, with their minimum and maximum as the spread, for wall and CPU time
both. The 1-minute load average is sampled around every measurement. Results into
``bench/results/publish.json``. Targets: publishing at most 1.1x, the build no slower (1.0x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "publish.json"
KEYS = ("publish", "republish", "build_full", "build_incremental")
METRICS = ("cpu", "wall")
TARGETS = {"publish": 1.1, "republish": 1.1, "build_full": 1.0, "build_incremental": 1.0}
#: the commit the Delta tables branched from (the folder swap and the day manifests)
BRANCH_POINT = "cf2eef8"
THIS = "delta"

Run = dict[str, dict[str, float]]  # metric -> step -> seconds


def export(ref: str, into: Path) -> Path:
    """``pipelines`` and ``warehouse`` as they are at ``ref``, under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "pipelines", "warehouse"],
        check=True,
        capture_output=True,
    ).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def measure_once(
    code: Path,
    rows: int,
    days: int,
    *,
    cpu: int | None,
    repeat: int = 1,
    profile: Path | None = None,
) -> Run:
    """One child process over a fresh warehouse: the seconds of each step."""
    with tempfile.TemporaryDirectory(dir=REPO / "bench" / "results") as root:
        env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{REPO}"}
        command = [sys.executable, "-m", "bench.publish_child", f"{root}/wh", str(rows), str(days)]
        command += ["--repeat", str(repeat)]
        if profile is not None:
            command += ["--profile", str(profile)]
        pin: Callable[[], None] | None = None
        if cpu is not None:

            def pin() -> None:
                os.sched_setaffinity(0, {cpu})

        # not from REPO: ``python -m`` puts its working folder first on the path, before
        # PYTHONPATH, so every tree would run this tree's code
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=root,
            preexec_fn=pin,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        found = dict(json.loads(done.stdout.strip().splitlines()[-1]))
        ran = found.pop("code")
        if Path(ran).resolve() != code.resolve():
            raise RuntimeError(f"the child ran the code in {ran}, not {code}")
        return found


def summary(runs: dict[str, list[Run]], baseline: str) -> dict[str, object]:
    """Per metric and tree: the median seconds of each step; and per tree other than the
    baseline, the per-round ratios to the baseline, their median, minimum and maximum."""
    medians = {
        metric: {
            name: {k: statistics.median(r[metric][k] for r in rs) for k in KEYS}
            for name, rs in runs.items()
        }
        for metric in METRICS
    }
    ratios: dict[str, dict[str, dict[str, dict[str, object]]]] = {}
    for name, rs in runs.items():
        if name == baseline:
            continue
        ratios[name] = {}
        for metric in METRICS:
            ratios[name][metric] = {}
            for k in KEYS:
                each = [
                    r[metric][k] / b[metric][k] for r, b in zip(rs, runs[baseline], strict=True)
                ]
                ratios[name][metric][k] = {
                    "median": statistics.median(each),
                    "min": min(each),
                    "max": max(each),
                    "of_medians": medians[metric][name][k] / medians[metric][baseline][k],
                    "rounds": each,
                }
    return {"seconds_median": medians, "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish")
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--repeat", type=int, default=5, help="publish and re-publish N times in each child"
    )
    parser.add_argument("--baseline", default=BRANCH_POINT)
    parser.add_argument("--also", action="append", default=[], metavar="REF")
    parser.add_argument("--cpu", type=int, default=None, help="pin every child to this CPU")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile each step here")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cpu = args.cpu
    (REPO / "bench" / "results").mkdir(exist_ok=True)
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        trees = {args.baseline: export(args.baseline, Path(folder) / "baseline")}
        for n, ref in enumerate(args.also):
            trees[ref] = export(ref, Path(folder) / f"also-{n}")
        trees[THIS] = REPO
        runs: dict[str, list[Run]] = {name: [] for name in trees}
        for n in range(args.rounds):
            order = list(trees) if n % 2 == 0 else list(reversed(trees))
            for name in order:
                loads.append(os.getloadavg()[0])
                profile = None
                if args.profile is not None and n == 0:
                    profile = args.profile / name.replace("/", "_")
                runs[name].append(
                    measure_once(
                        trees[name],
                        args.rows,
                        args.days,
                        cpu=cpu,
                        repeat=args.repeat,
                        profile=profile,
                    )
                )
                loads.append(os.getloadavg()[0])
                print(f"round {n + 1} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
    found = summary(runs, args.baseline)
    against_also = {
        ref: summary({ref: runs[ref], THIS: runs[THIS]}, ref)["ratios"][THIS]  # type: ignore[index]
        for ref in args.also
    }
    ratios = found["ratios"][THIS]  # type: ignore[index]
    met = {
        metric: {k: ratios[metric][k]["median"] <= TARGETS[k] for k in KEYS} for metric in METRICS
    }
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result = {
        "what": "publish a day and build coc.duckdb: Delta tables / the folder swap before",
        "rows": args.rows,
        "days": args.days,
        "rounds": args.rounds,
        "repeat": args.repeat,
        "baseline": args.baseline,
        "also": args.also,
        "this": head,
        "pinned_cpu": cpu,
        "cpus": os.cpu_count(),
        "load_average_1m": {
            "min": min(loads),
            "median": statistics.median(loads),
            "max": max(loads),
        },
        "targets": TARGETS,
        "met": met,
        **found,
        "ratios_to_also": against_also,
        "runs": runs,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    brief = {
        name: {m: {k: round(v[m][k]["median"], 3) for k in KEYS} for m in METRICS}
        for name, v in found["ratios"].items()  # type: ignore[attr-defined]
    }
    print(json.dumps({"ratios (median)": brief, "met": met}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
