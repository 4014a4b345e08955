"""No import cycles inside ``daemon/``, and the layers point one way (issue 10).

Every module of ``daemon/`` is parsed (not imported) and every import of a ``daemon.*``
module is collected: at module level, inside functions, and under ``if TYPE_CHECKING:``
(a cycle through type hints is still one concept in two places). Relative imports are
resolved, and ``from package import name`` counts as importing ``package.name`` when that
is a module. Importing ``a.b.c`` is an edge to ``a.b.c`` only, not to its parent packages:
running ``a/__init__.py`` on the way is Python's business, and counting it would make
every package that re-exports its modules a cycle.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "daemon"

#: Cycles allowed for now, each a group of modules whose imports among themselves are
#: ignored. Empty: the store (postgres <-> url) and HTTP (daemon.app <-> daemon.http.*)
#: cycles are gone. A group that is no longer a cycle fails
#: :func:`test_every_known_cycle_is_still_a_cycle`, so the list cannot go stale.
KNOWN_CYCLES: list[frozenset[str]] = []

Graph = Mapping[str, set[str]]


def module_name(path: Path, root: Path = ROOT) -> str:
    """``daemon/imap/folder.py`` -> ``daemon.imap.folder``; a package is its __init__."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, *, is_package: bool,
                     modules: Iterable[str]) -> set[str]:
    """Every ``daemon.*`` module ``source`` (the text of ``module``) imports, anywhere."""
    known = set(modules)
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, package)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {name for name in found if name.split(".")[0] == "daemon"} - {module}


def _resolve(node: ast.ImportFrom, package: str) -> str:
    """The absolute module of ``from <node.module> import ...`` written in ``package``."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[:len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


@functools.cache
def import_graph(package: Path = PACKAGE, root: Path = ROOT) -> Graph:
    """``module -> modules it imports`` for every module under ``package`` (read once)."""
    paths = {module_name(p, root): p for p in sorted(package.rglob("*.py"))}
    return {name: imported_modules(path.read_text(), name,
                                   is_package=path.name == "__init__.py", modules=paths)
            for name, path in paths.items()}


def without_known_cycles(graph: Graph, known: Iterable[frozenset[str]]) -> dict[str, set[str]]:
    """``graph`` minus the imports between two members of the same known group."""
    groups = list(known)
    return {module: {target for target in targets
                     if not any(module in g and target in g for g in groups)}
            for module, targets in graph.items()}


def stale_groups(graph: Graph, known: Iterable[frozenset[str]]) -> list[frozenset[str]]:
    """The groups of ``known`` whose members are not all on one import cycle any more."""
    components = [c for c in _components(graph) if len(c) > 1 or _path_back(graph, min(c), c)]
    return [group for group in known if not any(group <= c for c in components)]


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component that has one."""
    found = []
    for component in _components(graph):
        start = min(component)
        path = _path_back(graph, start, component)
        if path is not None:
            found.append(path)
    return sorted(found)


def _components(graph: Graph) -> Iterator[set[str]]:
    """Strongly connected components (Tarjan, iterative so deep graphs are fine)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    yield component


def _path_back(graph: Graph, start: str, within: set[str]) -> list[str] | None:
    """The shortest import path from ``start`` back to itself inside ``within``."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph.get(node, ())):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if target in within and target not in previous:
                    previous[target] = node
                    following.append(target)
        frontier = following
    return None


def test_no_import_cycles_in_daemon():
    found = cycles(without_known_cycles(import_graph(), KNOWN_CYCLES))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_every_known_cycle_is_still_a_cycle():
    assert stale_groups(import_graph(), KNOWN_CYCLES) == []


def test_every_daemon_import_names_an_existing_module():
    graph = import_graph()
    missing = {f"{module} imports {target}" for module, targets in graph.items()
               for target in targets if target not in graph}
    assert not missing, sorted(missing)


def test_imap_plumbing_never_reaches_the_actors():
    graph = import_graph()
    seen, todo = set(), [m for m in graph if m.startswith("daemon.imap")]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    assert not {m for m in seen if m.startswith("daemon.actors")}


# -- the checker itself ------------------------------------------------------------------

SAMPLE = """
from __future__ import annotations
import json
from typing import TYPE_CHECKING
import daemon.errors
from . import folder
from .connection import ImapSession
from ..store import AsyncStore
if TYPE_CHECKING:
    from daemon.config import Config

def later():
    from daemon.actors import status
"""


def test_imports_are_found_everywhere_and_resolved():
    modules = ["daemon.errors", "daemon.imap", "daemon.imap.folder",
               "daemon.imap.connection", "daemon.store", "daemon.config",
               "daemon.actors", "daemon.actors.status", "daemon.imap.sample"]
    assert imported_modules(SAMPLE, "daemon.imap.sample", is_package=False,
                            modules=modules) == {
        "daemon.errors", "daemon.imap.folder", "daemon.imap.connection", "daemon.store",
        "daemon.config", "daemon.actors.status"}


def test_a_known_cycle_that_was_broken_is_reported_stale():
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": set()}
    assert stale_groups(graph, [frozenset({"a", "b"}), frozenset({"c", "d"})]) == [
        frozenset({"c", "d"})]


def test_a_cycle_is_found_and_printed_as_a_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert cycles(without_known_cycles(graph, [frozenset({"a", "b", "c"})])) == [
        ["e", "e"]]
