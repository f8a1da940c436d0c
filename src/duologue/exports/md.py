"""Markdown: the transcript format (docs/transcript-format.md)."""

from ..transcripts.markdown import render_run_markdown
from . import RunFormat

FORMAT = RunFormat(
    name="md",
    suffix="md",
    media_type="text/markdown; charset=utf-8",
    description="the Markdown transcript",
    render=lambda run, analysis, events: render_run_markdown(run),
)
