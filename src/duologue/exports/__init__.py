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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DuologueError
from ..plugins import discover
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
        _FORMATS = discover(__name__, __path__, "FORMAT", RunFormat, "duologue.exports", "export format")
    return _FORMATS


def register_run_format(fmt: RunFormat) -> None:
    """Add a format from a program (plugins in packages use the entry-point group instead)."""
    run_formats()[fmt.name] = fmt


def unregister_run_format(name: str) -> None:
    run_formats().pop(name, None)


def run_format(name: str) -> RunFormat:
    formats = run_formats()
    if name not in formats:
        raise DuologueError(f"unknown export format '{name}' (a run exports as {', '.join(formats)})")
    return formats[name]
