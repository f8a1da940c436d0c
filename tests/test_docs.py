"""The docs stay true to the code: the command-line reference is what `--help` prints, every relative link of
the README and the docs resolves, and the README stays a door (at most 200 lines)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_cli_reference_is_what_help_prints():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.reference()
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == text, "run: python docs/cli_reference.py"
    # Every command is there, with its own help.
    from duologue.cli import COMMANDS

    for name in COMMANDS:
        assert f"## duologue {name}\n" in text, name
    assert "Usage: duologue run [OPTIONS]" in text


def _links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold no links
    return [m.group(1) for m in LINK.finditer(text)]


def test_every_relative_link_resolves():
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in _links(page):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL, or an anchor on the same page (mkdocs --strict checks those)
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_readme_is_a_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    # The two commands first: set up and run the main job, set up and run the tests.
    assert lines[3:5] == [
        "make demo   # sets up .venv and runs a conversation between two embedded models, offline",
        "make test   # sets up .venv and runs the test suite",
    ]
