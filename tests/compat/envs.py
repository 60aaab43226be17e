"""Isolated Python environments holding other DuckDB releases, for the compatibility tests.

Each ``tests/compat/<name>.txt`` is a hashed requirements file (``uv pip compile
--generate-hashes <name>.in``); its environment lives under ``.cache/compat/<name>`` (git-
ignored) and is made once: it is reused while the requirements file's hash matches the one
recorded in it, and remade otherwise. Packages come from PyPI through uv (the project's own,
in ``.uv/``, else one on PATH) with ``--require-hashes``: exactly the pinned files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.setup_lock import setup_lock

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
CACHE = ROOT / ".cache" / "compat"


def _uv() -> str:
    local = ROOT / ".uv" / "bin" / "uv"
    if local.exists():
        return str(local)
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv is needed to make the compatibility environments: run make sync-dev")
    return found


def compat_python(name: str) -> Path:
    """The interpreter of the environment described by ``tests/compat/<name>.txt``."""
    requirements = HERE / f"{name}.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    folder = CACHE / name
    python = folder / "bin" / "python"
    stamp = folder / "requirements.sha256"
    # one maker at a time: a test worker that finds another making it waits, then reuses it
    with setup_lock(CACHE / f"{name}.lock"):
        if not (python.exists() and stamp.exists() and stamp.read_text() == digest):
            _make(folder, requirements, digest)
    return python


def _make(folder: Path, requirements: Path, digest: str) -> None:
    python = folder / "bin" / "python"
    stamp = folder / "requirements.sha256"
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    subprocess.run(
        [
            _uv(),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "--require-hashes",
            "--no-deps",
            "-r",
            str(requirements),
        ],
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))},
    )
    stamp.write_text(digest)
