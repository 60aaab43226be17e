"""Running ``coc-etl`` (or ``dagster``) as a subprocess, and what a test reads off the run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
COC_ETL = str(BIN / "coc-etl")
ROOT = Path(__file__).parents[2]


def run(
    args: list[str], env: dict[str, str], *, timeout: float = 240, **kwargs: object
) -> subprocess.CompletedProcess:
    """``args`` in the repository root, output captured as text."""
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        args, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kwargs
    )


def one_line_error(
    done: subprocess.CompletedProcess, code: int, *needles: str, secrets: tuple[str, ...] = ()
) -> str:
    """The run exited ``code`` with one line on stderr naming every needle and no secret."""
    assert done.returncode == code, (done.returncode, done.stderr[-3000:])
    err = done.stderr.strip()
    assert "Traceback" not in err and "\n" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    for secret in secrets:
        assert secret not in done.stdout + done.stderr
    return err


def published(warehouse: Path) -> dict[Path, bytes]:
    """Every file under the warehouse's table folders, with its bytes."""
    return {
        p: p.read_bytes()
        for table in ("execution_instances", "script_orders", "order_batches")
        for p in sorted((warehouse / table).rglob("*"))
        if p.is_file()
    }
