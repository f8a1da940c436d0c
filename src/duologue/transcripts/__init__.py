"""Transcripts: the Markdown seed format (both ways) and the JSON export."""

from .jsonfmt import (
    parse_json,
    parse_jsonl,
    render_json,
    render_jsonl,
    run_from_dict,
    run_to_dict,
)
from .markdown import (
    Transcript,
    TranscriptMessage,
    parse_markdown,
    parse_markdown_with_voices,
    render_markdown,
    render_run_markdown,
    run_from_transcript,
    transcript_from_run,
)

__all__ = [
    "Transcript",
    "TranscriptMessage",
    "parse_json",
    "parse_jsonl",
    "parse_markdown",
    "parse_markdown_with_voices",
    "render_json",
    "render_jsonl",
    "render_markdown",
    "render_run_markdown",
    "run_from_dict",
    "run_from_transcript",
    "run_to_dict",
    "transcript_from_run",
]
