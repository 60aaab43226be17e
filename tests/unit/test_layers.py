"""The rooms and their one direction, declared in ``pyproject.toml`` (``[tool.importlinter]``).

``make test`` runs ``lint-imports`` on the tree; these tests check that the declaration
covers every module, that it catches an arrow running back up, and what no static check
sees: loading the pipeline or the CLI loads no simulator.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _layers() -> list[list[str]]:
    layers = next(c for c in CONFIG["contracts"] if c["type"] == "layers")["layers"]
    return [[name.strip() for name in layer.split("|")] for layer in layers]


def _modules(package: str) -> list[str]:
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_of_the_product_is_in_a_declared_room() -> None:
    rooms = [name for layer in _layers() for name in layer]
    outside = [
        module
        for package in CONFIG["root_packages"]
        for module in _modules(package)
        if module not in CONFIG["root_packages"]
        and not any(module == room or module.startswith(room + ".") for room in rooms)
    ]
    assert outside == [], f"modules in no room of the layer contract: {outside}"


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def product_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("layers")
    for package in CONFIG["root_packages"]:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_copy_of_the_product_keeps_every_contract(product_copy: Path) -> None:
    result = _lint(product_copy)
    assert result.returncode == 0, result.stdout[-2000:]


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("pipelines/lake/tables.py", "import warehouse.build"),
        ("pipelines/coc/client.py", "from pipelines.lake import tables"),
        ("warehouse/report.py", "import assets.checks"),
        ("pipelines/ingest.py", "import coc_simulator"),
        ("coc_simulator/app.py", "import pipelines.lake.tables"),
        ("warehouse/build.py", "import dagster"),
    ],
)
def test_the_contracts_catch_an_arrow_running_back_up(
    product_copy: Path, module: str, upward: str
) -> None:
    path = product_copy / module
    original = path.read_text()
    path.write_text(original + f"\n\ndef _planted() -> None:\n    {upward}  # noqa\n")
    try:
        result = _lint(product_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_loading_the_pipeline_and_the_cli_loads_no_simulator() -> None:
    code = (
        "import json, sys\n"
        "import pipelines.definitions, coc_etl.cli, coc_etl.demo, warehouse.build\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'coc_simulator')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []
