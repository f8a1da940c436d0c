"""duologue's version, written once: in pyproject.toml.

An installed duologue (pip install, also `pip install -e`) reads it from the package metadata that
pip wrote from pyproject.toml. A source checkout that was never installed (src/ on PYTHONPATH)
reads pyproject.toml itself. This module imports nothing from duologue, so any module may import it.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

UNKNOWN = "0+unknown"


def _from_pyproject() -> str:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"  # src/duologue/version.py -> repo root
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return UNKNOWN
    if project.get("name") != "duologue":
        return UNKNOWN
    return str(project.get("version", UNKNOWN))


def _version() -> str:
    try:
        return version("duologue")
    except PackageNotFoundError:
        return _from_pyproject()


__version__ = _version()
