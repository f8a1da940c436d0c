"""The layout of src/duologue: no import cycle among its modules, of any kind; SQL only in the store.

The import graph is read from the source with `ast` (nothing is imported): `import duologue.x`,
`from duologue.x import y`, `from . import y`, `from ..x import y`. Every import is an edge: one at
module level (also inside `if`/`try`/`class` at the top), one inside a function (it runs when called:
a cycle it closes is still a cycle of responsibilities, only hidden from the import system), and one
under `if TYPE_CHECKING:` (types a module names belong to it as much as the code it calls).
Only the modules an import names are edges: that importing duologue.a.b first runs duologue/__init__.py
is not counted, or every module would sit in a cycle with a package that re-exports it. A module that
imports its own package (`from . import __version__`) does count: that works only if the package
has got far enough in its own imports when the module is loaded.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "duologue"


def modules(src: Path = SRC) -> dict[str, Path]:
    return {
        ".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__"): p
        for p in sorted((src / PACKAGE).rglob("*.py"))
    }


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    deferred: bool  # inside a function: runs when called, not on import


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module):
    """(node, deferred) for every import statement: deferred when inside a function or a TYPE_CHECKING block."""

    def walk(node: ast.AST, deferred: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.body:
                    yield from walk_one(sub, True)
                for sub in child.orelse:
                    yield from walk_one(sub, deferred)
                continue
            yield from walk_one(child, deferred)

    def walk_one(node: ast.AST, deferred: bool):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, deferred
        inner = deferred or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from walk(node, inner)

    yield from walk(tree, False)


def import_edges(known: dict[str, Path]) -> list[Edge]:
    edges = []
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, deferred in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    # Relative to the package holding this module (a package's __init__ is its own package).
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                for alias in node.names:
                    # `from pkg import mod` imports the module pkg.mod when there is one.
                    sub = f"{stem}.{alias.name}"
                    targets.append(sub if sub in known else stem)
            for target in targets:
                # `import duologue.a.b` runs duologue.a.b; keep the longest known module it names.
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.append(Edge(name, target, node.lineno, deferred))
    return edges


def cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(component: list[str], edges: list[Edge]) -> str:
    inside = set(component)
    lines = [
        f"  {e.source} -> {e.target} (line {e.line}{', in a function' if e.deferred else ''})"
        for e in edges
        if e.source in inside and e.target in inside
    ]
    return " <-> ".join(component) + ":\n" + "\n".join(sorted(set(lines)))


# --- the reader itself ------------------------------------------------------------------


def test_the_reader_resolves_every_kind_of_import(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .a import thing\n",
        "a.py": "import duologue.b\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n",
        "b.py": "def later():\n    from .sub import d\n",
        "c.py": "",
        "sub/__init__.py": "from . import d\nfrom .. import c\n",
        "sub/d.py": "from ..a import thing\nfrom duologue.sub.d import x\nclass K:\n    import os\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    edges = import_edges(modules(tmp_path))
    assert {(e.source, e.target, e.deferred) for e in edges} == {
        ("duologue", "duologue.a", False),
        ("duologue.a", "duologue.b", False),
        ("duologue.a", "duologue.c", True),  # the TYPE_CHECKING import of c: an edge, not run on import
        ("duologue.b", "duologue.sub.d", True),
        ("duologue.sub", "duologue.sub.d", False),
        ("duologue.sub", "duologue.c", False),
        ("duologue.sub.d", "duologue.a", False),  # and no edge to itself
    }
    # a -> b -> sub.d -> a is closed only by b's import inside a function: a cycle all the same.
    assert cycles([e for e in edges if not e.deferred]) == []
    assert cycles(edges) == [["duologue.a", "duologue.b", "duologue.sub.d"]]
    # c -> a would close one through a's TYPE_CHECKING import of c.
    closed_by_types = [e for e in edges if not (e.deferred and e.source == "duologue.b")]
    assert cycles(closed_by_types + [Edge("duologue.c", "duologue.a", 1, False)]) == [["duologue.a", "duologue.c"]]
    # a -> sub.d at module level closes one that runs on import.
    closed = [e for e in edges if not e.deferred] + [Edge("duologue.a", "duologue.sub.d", 1, False)]
    assert cycles(closed) == [["duologue.a", "duologue.sub.d"]]


# --- the layout ---------------------------------------------------------------------------


def test_no_import_cycle_among_modules():
    edges = import_edges(modules())
    found = cycles(edges)
    assert not found, "import cycles (an import inside a function or a TYPE_CHECKING block counts too):\n" + "\n".join(
        describe(c, edges) for c in found
    )


def test_nothing_inside_the_package_imports_the_facade():
    """duologue.api gathers the public functions for scripts; the package's own modules import their owners."""
    edges = import_edges(modules())
    assert [f"{e.source} (line {e.line})" for e in edges if e.target == "duologue.api"] == []


def test_sql_only_in_the_store():
    """The store owns all SQL: no other module runs a query or spells a statement."""
    import re

    sql = re.compile(r"\.execute(many|script)?\(|\bSELECT\b|\bINSERT\b|\bUPDATE \w+ SET\b|\bCREATE TABLE\b")
    offenders = []
    for name, path in modules().items():
        if name.startswith("duologue.store"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if sql.search(line):
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert offenders == []
