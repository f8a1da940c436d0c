"""duologue's JSON export of one run (`duologue export RUN --format json`): the run keeps its id."""

from __future__ import annotations

import re
from pathlib import Path

from ..records import Run
from ..transcripts.jsonfmt import FORMAT as RUN_FORMAT
from ..transcripts.jsonfmt import parse_json
from . import ImportFormat, ImportOptions
from .common import head_text, read_text

# The export writes "format" first: `{` then, pretty-printed, a newline (one run) or, one run per
# line, nothing (JSONL: importers/jsonl.py).
_START = re.compile(r'\{(\s*)"format"\s*:\s*"' + re.escape(RUN_FORMAT) + '"')


def starts_like(path: Path) -> str | None:
    """The whitespace between `{` and `"format"` of a duologue run export, or None if it is not one."""
    found = _START.match(head_text(path, 256).lstrip())
    return found.group(1) if found else None


def detect(path: Path) -> bool:
    gap = starts_like(path)
    return gap is not None and "\n" in gap


def read(path: Path, options: ImportOptions) -> list[Run]:
    run = parse_json(read_text(path))
    run.source = str(path)
    return [run]


FORMAT = ImportFormat(
    name="json",
    description="duologue's JSON export of one run (`export --format json`); the run keeps its id",
    suffixes=(".json",),
    detect=detect,
    read=read,
    foreign=False,
    keeps_ids=True,
)
