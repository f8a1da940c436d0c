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
from ..plugins import Registry, package_parts
from ..records import Run


@dataclass(frozen=True)
class RunFormat:
    name: str
    suffix: str  # file name suffix, without the dot
    media_type: str
    description: str
    render: Callable[[Run, Mapping[str, Any] | None, Sequence[Mapping[str, Any]]], str]


# Every run export format: this package's modules first, then plugins' (entry points), then registered ones.
RUN_FORMATS: Registry[RunFormat] = Registry(
    "export format", RunFormat, "duologue.exports", builtins=package_parts(__name__, __path__, "FORMAT", RunFormat)
)


def run_formats() -> Registry[RunFormat]:
    return RUN_FORMATS


def register_run_format(fmt: RunFormat, *, replace: bool = False) -> None:
    """Add a format from a program (plugins in packages use the entry-point group instead)."""
    RUN_FORMATS.register(fmt, replace=replace)


def unregister_run_format(name: str) -> None:
    RUN_FORMATS.unregister(name)


def run_format(name: str) -> RunFormat:
    formats = run_formats()
    if name not in formats:
        broken = formats.why_missing(name)
        # Parquet (exports/parquet.py) is binary, not a text format of the registry, but a run exports as it too.
        shown = ", ".join(sorted({*formats, "parquet"}))
        raise DuologueError(broken or f"unknown export format '{name}' (a run exports as {shown})")
    return formats[name]
