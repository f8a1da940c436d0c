"""Parquet for chat fine-tuning and Hugging Face `datasets`: one row per (run, participant).

Each row holds the conversation as that participant saw it, in the `messages`
column that chat fine-tuning tools and `datasets` expect: a list of
{role, content} structs, its system prompt first (when it has one), then its
private `history`, then the conversation, its own messages as `assistant` and
everyone else's as `user`. The view is built by the engine's own
`participant_view`, so it is the same text a participant is sent (with three
or more voices the others' messages carry the speaker's name; reasoning is
left out unless a speaker shows it). Unlike a live turn, the view is the whole
run: nothing is trimmed or summarised to fit a context window.

This module is not a run format of the registry (those render text); the API
(api_exports.py) and `duologue export --format parquet` write it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import SpecError
from ..records import Run
from ..spec import ConversationSpec, Participant, spec_from_dict


def schema() -> Any:
    """The columns, in order; `messages` is list<struct<role: string, content: string>>."""
    import pyarrow as pa

    message = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])
    return pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("participant", pa.string(), nullable=False),
            pa.field("model", pa.string()),
            pa.field("messages", pa.list_(message), nullable=False),
            pa.field("experiment_id", pa.string()),
            pa.field("status", pa.string()),
            pa.field("stop_reason", pa.string()),
        ]
    )


def _participants(run: Run) -> tuple[list[Participant], list[str], int]:
    """The run's participants as they spoke at its last message, the names and how many there are.

    A participant whose stored spec has no system prompt (an imported transcript: it is unknown) gets
    none, rather than duologue's default one."""
    raw = [p for p in run.spec.get("participants", []) if isinstance(p, dict)]
    try:
        spec: ConversationSpec | None = spec_from_dict(run.spec)
    except SpecError:  # an old or hand-written spec: what matters here is each participant's name and prompt
        spec = None
    if spec is not None:
        people = spec.participants_at(run.messages[-1].index) if run.messages else list(spec.participants)
        names = spec.names
    else:
        people = [
            Participant.model_construct(
                name=str(p["name"]), model=str(p.get("model") or ""), system=str(p.get("system") or "")
            )
            for p in raw
            if p.get("name")
        ] or [Participant.model_construct(name=name, model="", system="") for name in run.participants]
        names = [p.name for p in people]
    unknown_system = {p.get("name") for p in raw if "system" not in p}
    people = [p.model_copy(update={"system": ""}) if p.name in unknown_system else p for p in people]
    return people, names, len(names)


def view_rows(run: Run) -> list[dict[str, Any]]:
    """One row per participant of the run: its view of the whole conversation."""
    from ..engine import participant_view  # imported when used: listing the export formats stays light

    people, names, n = _participants(run)
    shows_reasoning = {p.name for p in people if getattr(p, "show_reasoning", False)}
    rows = []
    for p in people:
        view = participant_view(p, run.messages, n, shows_reasoning=shows_reasoning, participants=names)
        rows.append(
            {
                "run_id": run.id,
                "participant": p.name,
                "model": p.model or None,
                "messages": [{"role": m.role, "content": m.content} for m in view],
                "experiment_id": run.experiment_id,
                "status": run.status,
                "stop_reason": run.stop_reason,
            }
        )
    return rows


BATCH_RUNS = 200  # runs per row group: a store of any size is written without holding it in memory


def write_views(runs: Iterable[Run], sink: Any) -> int:
    """Write the rows of every run as Parquet to `sink` (a path or a pyarrow output stream), a row
    group per BATCH_RUNS runs; return the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    count = 0
    with pq.ParquetWriter(sink, schema()) as writer:
        batch: list[dict[str, Any]] = []
        for i, run in enumerate(runs, start=1):
            batch += view_rows(run)
            if i % BATCH_RUNS == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema()))
                count, batch = count + len(batch), []
        if batch or count == 0:  # an empty export is still a file with the schema
            writer.write_table(pa.Table.from_pylist(batch, schema=schema()))
            count += len(batch)
    return count
