"""A provider from a separate package: tests/plugins/duologue_echo declares the `duologue.providers` entry
point in its pyproject.toml; once it is installed, `duologue models` lists `echo` and `duologue run` talks
through it, with nothing in duologue edited.

The registry reads the entry points once per process, so every check runs the CLI in a subprocess with
the installed plugin on PYTHONPATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from duologue.store import Store

PLUGIN = Path(__file__).parent / "plugins" / "duologue_echo"
SRC = Path(__file__).resolve().parents[1] / "src"


def install_by_hand(site: Path) -> None:
    """What an installer leaves on sys.path: the module, and a dist-info whose entry_points.txt holds the
    entry points the plugin's pyproject.toml declares (read from it, not repeated here)."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(PLUGIN / "duologue_echo.py", site)
    dist_info = site / f"duologue_echo-{project['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, eps in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in eps.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def duologue(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(SRC)]), "COLUMNS": "200"}
    env.pop("DUOLOGUE_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "duologue", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def check_plugin_works(site: Path, tmp_path: Path) -> None:
    models = duologue(site, tmp_path, "models")
    assert models.returncode == 0, models.stderr
    echo = [line for line in models.stdout.splitlines() if line.split()[:1] == ["echo/<model>"]]
    assert echo and "answers with the number of messages it was sent" in echo[0]

    db = tmp_path / "store" / "duologue.db"
    run = duologue(site, tmp_path, "run", "--a", "echo/one", "--b", "echo/two", "--max-messages", "4", "--db", str(db))
    assert run.returncode == 0, run.stderr
    with Store(db, create=False) as store:
        (row,) = store.list_runs()
        assert row.models == ["echo/one", "echo/two"] and row.message_count == 4 and row.stop_reason == "max_messages"
        messages = store.get_run(row.id).messages
    # Message 1 is the opener; each echo counts the messages of its own view: its system prompt, then the opener
    # and what followed.
    assert [m.content for m in messages[1:]] == ["echo of 2 messages", "echo of 3 messages", "echo of 4 messages"]
    assert [m.speaker for m in messages] == ["one", "two", "one", "two"]  # named after their models


def test_a_plugin_provider_from_its_entry_point_lists_and_runs(tmp_path):
    site = tmp_path / "site"
    install_by_hand(site)
    check_plugin_works(site, tmp_path)


def test_without_the_plugin_echo_is_an_unknown_provider(tmp_path):
    result = duologue(tmp_path / "empty", tmp_path, "run", "--a", "echo/one", "--b", "echo/two", "--db", "x.db")
    assert result.returncode == 2
    assert result.stderr.startswith("duologue: error: model 'echo/one': unknown provider 'echo'")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_plugin_installed_by_pip(tmp_path):
    """pip builds the plugin from its pyproject.toml (setuptools, in an isolated build environment) and
    installs it into a folder of its own."""
    site = tmp_path / "site"
    source = shutil.copytree(PLUGIN, tmp_path / "duologue_echo")  # the build leaves build/ beside the source
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    assert list(site.glob("duologue_echo-*.dist-info/entry_points.txt"))
    check_plugin_works(site, tmp_path)
