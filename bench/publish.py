"""Publishing a day on Delta tables against the path it replaced, and the build over each.

    python -m bench.publish [--rows 250000] [--days 3] [--rounds 3] [--baseline REF]

The same synthetic day of ``--rows`` instances (``bench/synthetic.py``) is published, then
re-published, through the product's ``DayWriter``, and ``coc.duckdb`` is built over it, by
two trees of code side by side in the same run: this one (Delta commits, pinned views) and
``--baseline``, a git reference of the code before (its ``pipelines`` and ``warehouse``
exported to a temporary folder: the folder swap and day manifests). Each measurement is a
fresh process on a fresh local warehouse; the rounds alternate the two trees, and the
median of each is compared. Results: ratios (this tree / baseline) into
``bench/results/publish.json``. Targets: publishing at most 1.1x, the build no slower.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "publish.json"
KEYS = ("publish", "republish", "build_full", "build_incremental")
TARGETS = {"publish": 1.1, "republish": 1.1, "build_full": 1.0, "build_incremental": 1.0}


def export(ref: str, into: Path) -> Path:
    """``pipelines`` and ``warehouse`` as they are at ``ref``, under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "pipelines", "warehouse"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def measure_once(code: Path, rows: int, days: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=REPO / "bench" / "results") as root:
        env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{REPO}"}
        done = subprocess.run(
            [sys.executable, "-m", "bench.publish_child", f"{root}/wh", str(rows), str(days)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish")
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default="main")
    args = parser.parse_args(argv)
    (REPO / "bench" / "results").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        before = export(args.baseline, Path(folder))
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "delta": []}
        for n in range(args.rounds):
            for name, code in (("baseline", before), ("delta", REPO)):
                runs[name].append(measure_once(code, args.rows, args.days))
                print(f"round {n + 1} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
    medians = {
        name: {k: statistics.median(r[k] for r in rs) for k in KEYS} for name, rs in runs.items()
    }
    ratios = {k: medians["delta"][k] / medians["baseline"][k] for k in KEYS}
    result = {
        "what": "publish a day and build coc.duckdb: Delta tables / the folder swap before",
        "rows": args.rows,
        "days": args.days,
        "rounds": args.rounds,
        "baseline": args.baseline,
        "seconds_median": medians,
        "ratios": ratios,
        "targets": TARGETS,
        "met": {k: ratios[k] <= TARGETS[k] for k in KEYS},
        "runs": runs,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"ratios": ratios, "met": result["met"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
