"""The module graph of convstore: no import cycles, and no import up a layer.

The source is read with ``ast``, never imported. An import counts for cycles when it
runs as the module loads (at module level, in class bodies, under ``if``/``try``);
imports inside functions and under ``if TYPE_CHECKING:`` are deferred and do not. An
import of ``a.b.c`` is an edge to ``a.b.c`` only: the packages above it are loaded first
but are not what the module depends on.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"

# Cycles that exist now outside the backends and are being removed: empty the list once
# they are gone (a cycle listed here that no longer exists fails the test, so that the
# list never allows more than it must). retry.py imports store.py only under
# TYPE_CHECKING, so the two are no cycle.
KNOWN_CYCLES: list[frozenset[str]] = []

# What the backends must never import: the layers built on top of them.
ABOVE_BACKENDS = ("convstore.store", "convstore.server", "convstore.cli", "convstore.manager")


@dataclass(frozen=True)
class Import:
    """One import statement's target module, and whether it runs as the module loads."""

    target: str
    at_load: bool


def module_name(path: Path) -> str:
    """The dotted name of a source file under SOURCE (a package is its __init__)."""
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every convstore module, by name."""
    return {module_name(path): path for path in sorted((SOURCE / "convstore").rglob("*.py"))}


def is_type_checking(test: ast.expr) -> bool:
    """Whether an ``if`` tests TYPE_CHECKING (bare or as typing.TYPE_CHECKING)."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def import_nodes(
    body: list[ast.stmt], at_load: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement in ``body``, with whether it runs as the module loads."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, at_load
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from import_nodes(node.body, False)
        elif isinstance(node, ast.If) and is_type_checking(node.test):
            yield from import_nodes(node.body, False)
            yield from import_nodes(node.orelse, at_load)
        else:
            for inner in nested_bodies(node):
                yield from import_nodes(inner, at_load)


def nested_bodies(node: ast.stmt) -> Iterator[list[ast.stmt]]:
    """The statement lists inside a compound statement (class, if, try, with, for,
    while, match); none for a simple statement."""
    for field in ("body", "orelse", "finalbody"):
        value = getattr(node, field, None)
        if isinstance(value, list):
            yield value
    for clause in [*getattr(node, "handlers", []), *getattr(node, "cases", [])]:
        yield clause.body


def resolve(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The convstore modules an import statement in ``module`` loads: for ``from P
    import N``, the submodule P.N if there is one, else P."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the module's package, up level - 1 packages
            package = module.split(".")
            if modules()[module].name != "__init__.py":
                package.pop()
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base
            for alias in node.names
        ]
    return sorted({name for name in names if name in modules()})


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    """The convstore imports of a module, in source order."""
    tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
    return tuple(
        Import(target, at_load)
        for node, at_load in import_nodes(tree.body, True)
        for target in resolve(module, node)
    )


def load_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports as it loads."""
    return {
        module: {i.target for i in imports_of(module) if i.at_load and i.target != module}
        for module in modules()
    }


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_the_source() -> None:
    graph = load_graph()
    assert "convstore.backends.sql.backend" in graph
    assert "convstore.backends.sql.session" in graph["convstore.backends.sql.backend"]
    assert "convstore.store" in graph["convstore"]
    # open_backend imports the backends inside the function: deferred, not an edge
    assert "convstore.backends.sql.backend" not in graph["convstore.backends"]


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "d"}, "e": set()}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]


def test_deferred_imports_are_told_apart() -> None:
    source = """
import convstore.errors
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from convstore.store import ConversationStore
else:
    from convstore import models
try:
    from convstore.ids import new_id
except ImportError:
    from convstore import config
class Holder:
    from convstore.queries import BranchPage
from . import fileio
from .backends.base import Backend
def later():
    from convstore.backends import open_backend
"""
    found = [
        (target, at_load)
        for node, at_load in import_nodes(ast.parse(source).body, True)
        for target in resolve("convstore.cache", node)
    ]
    assert found == [
        ("convstore.errors", True),
        ("convstore.store", False),
        ("convstore.models", True),
        ("convstore.ids", True),
        ("convstore.config", True),
        ("convstore.queries", True),
        ("convstore.fileio", True),
        ("convstore.backends.base", True),
        ("convstore.backends", False),
    ]


def test_no_import_cycles() -> None:
    found = cycles(load_graph())
    unexpected = [sorted(cycle) for cycle in found if cycle not in KNOWN_CYCLES]
    assert unexpected == [], f"import cycles: {unexpected}"
    gone = [sorted(cycle) for cycle in KNOWN_CYCLES if cycle not in found]
    assert gone == [], f"no longer cycles, remove them from KNOWN_CYCLES: {gone}"


def every_import(prefix: str) -> Iterator[tuple[str, str]]:
    """(module, imported module) for every import, deferred or not, of the modules whose
    name starts with ``prefix``."""
    for module in modules():
        if module == prefix or module.startswith(prefix + "."):
            for found in imports_of(module):
                yield module, found.target


def is_within(module: str, package: str) -> bool:
    """Whether ``module`` is ``package`` or inside it (the root package: only itself,
    since every module is inside it)."""
    if package == "convstore":
        return module == package
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        # the root package is the facade (it imports the store): importing it goes up too
        ("convstore.backends", (*ABOVE_BACKENDS, "convstore")),
        ("convstore.search", ("convstore.backends",)),
    ],
)
def test_no_import_up_a_layer(lower: str, upper: tuple[str, ...]) -> None:
    found = list(every_import(lower))
    assert found, f"{lower} imports nothing of convstore: is the graph read?"
    wrong = sorted(
        (module, target) for module, target in found if any(is_within(target, p) for p in upper)
    )
    assert wrong == [], f"imports up a layer: {wrong}"
