"""Finding the parts that plug in: one module per part in a package, plus entry points.

Detectors (duologue.detectors) and run export formats (duologue.exports) are
found the same way: every module of their package that defines the named
attribute (an instance of the part's class) adds one part, then every entry
point of the part's group does (third-party packages). The first of a name
wins, so a plugin cannot replace a built-in by accident.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from .errors import DuologueError

T = TypeVar("T")


def discover(package: str, path: Iterable[str], attr: str, cls: type[T], group: str, what: str) -> dict[str, T]:
    """{part.name: part} for the package's modules (by module name), then the entry-point group."""
    found: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(list(path)), key=lambda i: i.name):
        part = getattr(importlib.import_module(f"{package}.{info.name}"), attr, None)
        if isinstance(part, cls):
            found.setdefault(part.name, part)  # type: ignore[attr-defined]
    for ep in entry_points(group=group):
        try:
            part = ep.load()
        except Exception as err:  # a broken plugin names itself
            raise DuologueError(f"{what} plugin '{ep.name}' failed to load: {err}") from None
        if isinstance(part, cls):
            found.setdefault(part.name, part)  # type: ignore[attr-defined]
    return found
