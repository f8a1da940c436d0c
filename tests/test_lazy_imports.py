"""Quick commands stay quick: the package and the CLI import a command's module only when it is used."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import duologue
from duologue.store import Store
from helpers import make_run

PROBE = """
import sys
from duologue.cli import cli
cli.main({args!r}, prog_name="duologue", standalone_mode=False)
heavy = sorted(m for m in ("numpy", "duologue.engine", "duologue.analysis", "duologue.api", "duologue.queries",
                            "pydantic", "rich")
               if m in sys.modules)
print("HEAVY", ",".join(heavy))
"""


def heavy_modules(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=list(args))], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("HEAVY"))
    return [m for m in line.split(" ", 1)[1].split(",") if m]


def test_search_and_version_load_no_engine_analysis_or_rich(tmp_path):
    db = tmp_path / "d.db"
    with Store(db) as store:
        store.create_run(make_run("r1", ["resting silent"]))
    assert heavy_modules("search", "resting", "--db", str(db)) == []
    assert heavy_modules("--version") == []


def test_a_command_that_needs_them_still_gets_them_and_never_the_facade(tmp_path):
    loaded = heavy_modules("ls", "--db", str(tmp_path / "none.db"))
    assert "duologue.queries" in loaded and "rich" in loaded
    # The CLI is a shell over the modules that own each function; duologue.api only gathers them for scripts.
    assert "duologue.api" not in loaded


def test_every_public_name_resolves():
    for name in duologue.__all__:
        assert getattr(duologue, name) is not None, name
    # What type checkers see (the TYPE_CHECKING imports) is what the module gives at run time: the same
    # names, each from the module the lazy table loads it from.
    tree = ast.parse(Path(duologue.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    declared = {
        alias.asname or alias.name: f"duologue.{node.module}"
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert declared == {name: f"duologue{module}" for name, module in duologue._EXPORTS.items()}


def test_the_public_surface_is_declared_and_typed():
    """`duologue.__all__` and `duologue.api.__all__` name what exists (each resolves), the facade offers every
    name the package does, and the package says it is typed (PEP 561)."""
    from duologue import api

    assert set(duologue.__all__) <= set(api.__all__) | {
        "ConversationSpec",
        "DuologueError",
        "Message",
        "Participant",
        "Run",
        "Store",
        "__version__",
        "default_spec",
        "load_conversation_spec",
    }
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert sorted(api.__all__) == api.__all__ and len(set(api.__all__)) == len(api.__all__)
    assert (Path(duologue.__file__).parent / "py.typed").is_file()


def test_the_public_functions_have_explicit_signatures():
    """No **kwargs on the API's functions: a typo in a keyword is an error, and editors can complete them."""
    import inspect

    from duologue import api

    loose = [
        name
        for name in api.__all__
        if inspect.isfunction(getattr(api, name))
        and any(p.kind is p.VAR_KEYWORD for p in inspect.signature(getattr(api, name)).parameters.values())
    ]
    assert loose == []
