"""duologue's Markdown transcript (docs/transcript-format.md): one run, with a new id."""

from __future__ import annotations

import re
from pathlib import Path

from ..records import Run
from ..transcripts.markdown import parse_markdown_with_voices, run_from_transcript
from . import ImportFormat, ImportOptions
from .common import head_text, new_ids

_HEADER = re.compile(r"# [^\n]*\r?\n\r?\n\*\*Started:\*\* ")


def detect(path: Path) -> bool:
    return _HEADER.match(head_text(path, 1024)) is not None


def read(path: Path, options: ImportOptions) -> list[Run]:
    text = path.read_text(encoding="utf-8")  # the parser drops a BOM itself
    return [run_from_transcript(parse_markdown_with_voices(text), new_ids(1)[0], source=str(path))]


FORMAT = ImportFormat(
    name="md",
    description="duologue's Markdown transcript (runs/<run id>.md, `export --format md`)",
    suffixes=(".md", ".markdown"),
    detect=detect,
    read=read,
    foreign=False,
)
