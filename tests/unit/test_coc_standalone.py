"""The COC client is a library of its own: ``pipelines/coc/`` imports nothing else of the
product, so it could be published and used without the warehouse around it."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pipelines.coc


def test_the_coc_package_imports_nothing_else_of_the_product() -> None:
    modules = [f"pipelines.coc.{m.name}" for m in pkgutil.iter_modules(pipelines.coc.__path__)]
    assert "pipelines.coc.client" in modules and "pipelines.coc.settings" in modules
    # a fresh interpreter, so that what the test run imported before cannot hide anything
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'pipelines')))"
    )
    root = Path(pipelines.coc.__file__).parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stdout)
    outside = [m for m in loaded if m != "pipelines" and not m.startswith("pipelines.coc")]
    assert outside == []
