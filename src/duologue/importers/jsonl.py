"""duologue JSONL: many runs, one JSON export object per line (`render_jsonl`, `export --all`).

Each line is exactly the object `duologue export RUN --format json` writes for one run (on one
line); every run keeps its id. Blank lines are skipped.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TranscriptFormatError
from ..records import Run
from ..transcripts.jsonfmt import parse_jsonl
from . import ImportFormat, ImportOptions
from .common import read_text
from .json import starts_like


def detect(path: Path) -> bool:
    gap = starts_like(path)
    return gap is not None and "\n" not in gap


def read(path: Path, options: ImportOptions) -> list[Run]:
    runs = parse_jsonl(read_text(path))
    seen: dict[str, int] = {}
    for number, run in enumerate(runs, 1):
        if run.id in seen:
            raise TranscriptFormatError(f"run {run.id} appears twice (runs {seen[run.id]} and {number} of the file)")
        seen[run.id] = number
        run.source = str(path)
    return runs


FORMAT = ImportFormat(
    name="jsonl",
    description="duologue JSONL: many runs, one JSON export per line; each run keeps its id",
    suffixes=(".jsonl", ".ndjson"),
    detect=detect,
    read=read,
    foreign=False,
    keeps_ids=True,
)
