"""The version is written once, in pyproject.toml; the package, the CLI and the fallback agree with it."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from click.testing import CliRunner

import duologue
from duologue import version as version_module
from duologue.cli import cli

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def pyproject_version() -> str:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]


def test_the_package_reports_the_pyproject_version():
    assert duologue.__version__ == pyproject_version()


def test_the_cli_reports_it_too():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert pyproject_version() in result.output


def test_a_checkout_that_is_not_installed_reads_pyproject(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version_module, "version", not_installed)
    assert version_module._version() == pyproject_version()


def test_no_version_is_written_anywhere_else():
    src = Path(version_module.__file__).resolve().parent
    for path in src.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert f'"{pyproject_version()}"' not in text, f"{path} writes the version again"
