"""The layers hold: the product's import graph, read from the source with ``ast``.

- no import cycles among the product's modules (every import counts: module level, inside
  ``if TYPE_CHECKING:`` and inside functions);
- ``pipelines/coc/`` (the COC client) imports nothing else of the product but the error root
  (``pipelines/errors.py``), which imports nothing of the product at all;
- the simulator (``coc_simulator``) is a tool of the tests and the demo: ingestion code
  (``pipelines/``, ``assets/``, ``warehouse/``) never imports it at module level, and only
  the demo and the CLI's ``simulator`` command import it at all, inside a function.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipelines", "assets", "warehouse", "coc_simulator")
#: The only modules of the ingestion packages that may import the simulator (lazily).
SIMULATOR_USERS = {"pipelines.demo", "pipelines.cli"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    lazy: bool  # inside a function: runs when called, not when the module is imported


def product_modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``packages`` under ``root``."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The product module that ``import name`` loads (its longest known prefix), if any."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, modules: dict[str, Path]) -> None:
        self.module, self.is_package, self.modules = module, is_package, modules
        self.depth = 0
        self.edges: list[Edge] = []

    def _add(self, name: str, node: ast.stmt) -> None:
        target = _resolve(name, self.modules)
        if target is not None and target != self.module:
            self.edges.append(Edge(self.module, target, node.lineno, self.depth > 0))

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            here = self.module.split(".")
            anchor = here if self.is_package else here[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            # ``from package import module`` imports the module; ``from module import name``
            # the module
            self._add(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in self.modules else base, node
            )


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    edges: list[Edge] = []
    for name, path in modules.items():
        visitor = _Imports(name, path.name == "__init__.py", modules)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        edges += visitor.edges
    return edges


def find_cycles(edges: list[Edge]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _edges() -> list[Edge]:
    return import_edges(product_modules(ROOT, PACKAGES))


def test_the_graph_sees_every_package_and_the_known_edges() -> None:
    edges = _edges()
    sources = {e.source.split(".")[0] for e in edges}
    assert sources == set(PACKAGES)
    found = {(e.source, e.target, e.lazy) for e in edges}
    assert ("pipelines.demo", "coc_simulator", True) in found
    assert ("coc_simulator.data", "coc_simulator.model", False) in found
    assert ("coc_simulator.data", "coc_simulator.catalog", False) in found  # from pkg import mod


def test_no_import_cycles_among_the_products_modules() -> None:
    cycles = find_cycles(_edges())
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_coc_client_imports_nothing_else_of_the_product_but_the_error_root() -> None:
    outside = [
        f"{e.source}:{e.line} imports {e.target}"
        for e in _edges()
        if _inside(e.source, "pipelines.coc")
        and not _inside(e.target, "pipelines.coc")
        and e.target != "pipelines.errors"
    ]
    assert outside == []
    assert [e for e in _edges() if e.source == "pipelines.errors"] == []


def test_ingestion_code_never_imports_the_simulator_at_module_level() -> None:
    into_simulator = [
        e
        for e in _edges()
        if e.target.split(".")[0] == "coc_simulator" and e.source.split(".")[0] != "coc_simulator"
    ]
    eager = [f"{e.source}:{e.line}" for e in into_simulator if not e.lazy]
    assert eager == [], f"imports coc_simulator at module level: {eager}"
    assert {e.source for e in into_simulator} == SIMULATOR_USERS


def test_loading_the_pipeline_and_the_cli_loads_no_simulator() -> None:
    code = (
        "import json, sys\n"
        "import pipelines.definitions, pipelines.cli, pipelines.demo, warehouse.build\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'coc_simulator')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_check_finds_a_cycle_through_type_checking_and_relative_imports(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import thing\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n"
            ),
            "pkg/c.py": "def f():\n    import pkg.a\n",
            "pkg/d.py": "from pkg import a\n",
        },
    )
    edges = import_edges(product_modules(tmp_path, ("pkg",)))
    assert find_cycles(edges) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert {(e.source, e.target, e.lazy) for e in edges} == {
        ("pkg.a", "pkg.b", False),
        ("pkg.b", "pkg.c", False),
        ("pkg.c", "pkg.a", True),
        ("pkg.d", "pkg.a", False),
    }
