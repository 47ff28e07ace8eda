"""The library's imports point one way: no cycle between modules, no lower stage importing a higher one.

Read with ``ast``, so every import counts: at the top of a module, inside a function (a deferred
import that only hides a cycle is still one) and under ``TYPE_CHECKING``. ``STAGES`` is the table
of allowed directions: a module may import its own stage and the stages listed before it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (("featx", "featx"), ("cache", "featx.cache"), ("cli", "featx.cli"))  # folder -> package

# Lowest first. A module belongs to the first stage one of whose prefixes names it or its package.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("featx.errors", "featx.checks", "featx._faults", "featx._gc", "featx._versions", "featx.config", "featx.backend")),
    ("data", ("featx.data",)),
    ("cache", ("featx.cache",)),
    ("backbones", ("featx.backbones",)),
    ("options", ("featx.options",)),  # validates against the backbone tables and the cache's dtypes
    ("features", ("featx.features",)),
    ("engine", ("featx.engine",)),
    ("search", ("featx.search",)),  # queries embed through the engine; nothing below the facade needs it
    ("heads", ("featx.heads",)),
    ("inspection", ("featx.inspection",)),
    ("model", ("featx.model",)),
    ("facade", ("featx.api", "featx.embedder", "featx.demo", "featx.weights", "featx.exporter",
                "featx")),
    ("cli", ("featx.cli", "featx.__main__")),
]


def modules(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    """Every module of the library by dotted name (a package by its ``__init__``)."""
    found = {}
    for folder, package in packages:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(root / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def import_graph(found: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the library modules it imports (``from a import b`` is ``a.b`` when that is a module)."""
    edges: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in found else base for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in found:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def stage_of(module: str) -> int:
    best = None
    for rank, (_, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    if best is None:
        raise AssertionError(f"{module} is in no stage of STAGES: add it to the table")
    return best[0]


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} ({STAGES[stage_of(a)][0]}) imports {b} ({STAGES[stage_of(b)][0]})"
                  for a, targets in edges.items() for b in targets if stage_of(b) > stage_of(a))


def test_the_library_has_no_import_cycle():
    assert cycles(import_graph(modules())) == []


def test_no_stage_imports_a_higher_one():
    assert upward_imports(import_graph(modules())) == []


def test_every_module_is_in_a_stage_and_small():
    for name, path in modules().items():
        stage_of(name)
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 350, f"{path} has {lines} lines; split it by concept"


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    for relative, text in files.items():
        path = tmp_path / "featx" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return import_graph(modules(tmp_path, (("featx", "featx"),)))


def test_a_planted_cycle_is_found_even_behind_a_deferred_import(tmp_path):
    edges = _package(tmp_path, {
        "__init__.py": "",
        "engine/__init__.py": "",
        "engine/run.py": "from featx.engine.views import update\n",
        "engine/views.py": "def update():\n    from featx.engine import run\n",
        "data/__init__.py": "",
        "data/records.py": "import featx.errors\n",
        "errors.py": "",
    })
    assert cycles(edges) == [["featx.engine.run", "featx.engine.views"]]


def test_a_planted_upward_import_is_found(tmp_path):
    edges = _package(tmp_path, {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/records.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from featx.heads.head import Head\n",
        "heads/__init__.py": "",
        "heads/head.py": "from ..data import records\n",
    })
    assert edges["featx.heads.head"] == {"featx.data.records"}  # a relative import resolves
    assert upward_imports(edges) == ["featx.data.records (data) imports featx.heads.head (heads)"]


@pytest.mark.parametrize("module", ["featx.heads.keras_head", "featx.weights", "featx.exporter"])
def test_paths_recorded_in_files_or_documented_still_import(module):
    import importlib

    importlib.import_module(module)
