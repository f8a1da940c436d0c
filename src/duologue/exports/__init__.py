"""Run export formats: one module per format in this package, found by looking.

Each module here defines `FORMAT = RunFormat(...)`: a name (what `--format`
takes), a file suffix, a media type, one line of description and a
`render(run, analysis, events) -> str`. `duologue export RUN --format NAME`,
the API's `export_run` and the viewer's download links all go through
`run_formats()`, so a new format is one new file in this folder. Third-party
packages add formats the same way through the entry-point group
`duologue.exports` (an entry point naming a RunFormat).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ..errors import DuologueError
from ..records import Run


@dataclass(frozen=True)
class RunFormat:
    name: str
    suffix: str  # file name suffix, without the dot
    media_type: str
    description: str
    render: Callable[[Run, Mapping[str, Any] | None, Sequence[Mapping[str, Any]]], str]


_FORMATS: dict[str, RunFormat] | None = None


def run_formats() -> dict[str, RunFormat]:
    """Every run export format, built-ins (this package's modules) first, then plugins."""
    global _FORMATS
    if _FORMATS is None:
        found: dict[str, RunFormat] = {}
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
            fmt = getattr(importlib.import_module(f"{__name__}.{info.name}"), "FORMAT", None)
            if isinstance(fmt, RunFormat):
                found[fmt.name] = fmt
        for ep in entry_points(group="duologue.exports"):
            try:
                fmt = ep.load()
            except Exception as err:  # a broken plugin names itself and leaves the others working
                raise DuologueError(f"export format plugin '{ep.name}' failed to load: {err}") from None
            if isinstance(fmt, RunFormat):
                found.setdefault(fmt.name, fmt)
        _FORMATS = found
    return _FORMATS


def run_format(name: str) -> RunFormat:
    formats = run_formats()
    if name not in formats:
        raise DuologueError(f"unknown export format '{name}' (a run exports as {', '.join(formats)})")
    return formats[name]
