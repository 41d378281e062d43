"""The import graph of cvbench, methods and datamodules: no cycles, no private names imported
across modules, and the layers of STYLE.md (datamodules imports neither cvbench nor methods;
methods does not import cvbench).

Every module is parsed with :mod:`ast`, nothing is imported: module-level and function-level
imports both count (an import inside a function is still an edge; it only hides a cycle).
Imports under ``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cvbench", "methods", "datamodules")


def _modules() -> tuple[dict[str, Path], set[str]]:
    """(every Python module of the three packages by dotted name, every module name,
    compiled extensions included), found by pkgutil without importing them."""
    found: dict[str, Path] = {}
    names: set[str] = set(PACKAGES)
    for package in PACKAGES:
        init = ROOT / package / "__init__.py"
        found[package] = init
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            names.add(info.name)
            base = ROOT.joinpath(*info.name.split("."))
            path = base / "__init__.py" if info.ispkg else base.with_suffix(".py")
            if path.exists():  # a compiled extension (datamodules._accel) has no source
                found[info.name] = path
    return found, names


MODULES, NAMES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except the ``if TYPE_CHECKING:`` ones."""
    nodes: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            nodes.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return nodes


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def _parse(module: str) -> tuple[set[str], list[str]]:
    """(the modules of ours that ``module`` imports, its ``from X import _private`` lines)."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    edges: set[str] = set()
    private: list[str] = []
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            edges.update(alias.name for alias in node.names if _ours(alias.name))
            continue
        source = _absolute(module, node)
        if not _ours(source):
            continue
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            if sub in NAMES:  # `from package import module` (a package's own _private one too)
                edges.add(sub)
                continue
            edges.add(source)
            if alias.name.startswith("_") and not alias.name.endswith("__") and source != module:
                private.append(f"{module}:{node.lineno}: from {source} import {alias.name}")
    edges.discard(module)
    return edges, private


PARSED = {module: _parse(module) for module in MODULES}
GRAPH = {module: {m for m in edges if m in MODULES} for module, (edges, _) in PARSED.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_walks_every_package() -> None:
    assert {"cvbench.run", "cvbench.commands.run", "methods.tcar", "datamodules.reader"} <= set(
        MODULES
    )


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_private_names_across_modules() -> None:
    lines = [line for _, private in PARSED.values() for line in private]
    assert lines == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [("datamodules", ("cvbench", "methods")), ("methods", ("cvbench",))],
)
def test_layers(layer: str, forbidden: tuple[str, ...]) -> None:
    wrong = sorted(
        f"{module} -> {target}"
        for module, (edges, _) in PARSED.items()
        if module.split(".")[0] == layer
        for target in edges
        if target.split(".")[0] in forbidden
    )
    assert wrong == []
