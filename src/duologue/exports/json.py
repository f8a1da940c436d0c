"""JSON: everything the store has about a run (its spec, messages, analysis and events)."""

from ..transcripts.jsonfmt import render_json
from . import RunFormat

FORMAT = RunFormat(
    name="json",
    suffix="json",
    media_type="application/json",
    description="everything: spec, messages with timings, analysis, events",
    render=lambda run, analysis, events: render_json(run, analysis=analysis, events=events),
)
