"""What a run's recorded events say, in words: one description for every reader (the viewer, `duologue show`);
and its lineage (the runs it was forked from, and those forked from it).

An event is a row of the store's events table, as `Store.get_events` returns it: a dict with
`kind`, `message_index`, `detail`, `data` (a dict or None) and `created_at`. Kinds written today:
`context` (a trim, with the summary's text when summarized), `injection`, `change`, `window`,
`limits` (a resume that raised a limit), and the detections `loop`, `near_loop`, `convergence`,
`attractor`; an imported log's `agent` (the block a side agent wrote after a message: a
UniversalBackrooms media, Discord or SQL agent) and `agent_error` (its error line). Unknown kinds are
described by their detail alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import DuologueError
from .vocabulary import WORDS

if TYPE_CHECKING:
    from .records import Run
    from .store import Store

# Events that happen before their message (they shape it); the others (detections, limits) after it.
BEFORE = ("injection", "change", "context", "context_trimmed", "window")
# Detections: their data's plain values are worth a line (the detail says the rest).
DETECTION_KINDS = ("loop", "near_loop", "convergence", "attractor")
# What an imported log's side agents wrote: the detail names the agent (or is the error's line), the
# data's text is what they wrote.
AGENT_KINDS = ("agent", "agent_error")


def format_value(v: Any) -> str:
    """A setting's value as `show` writes it: strings bare unless they need quotes, floats short, JSON for the rest."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False) if (not v or v != v.strip() or " " in v) else v
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))
    return str(v)


@dataclass(frozen=True)
class EventDescription:
    """One event in words."""

    kind: str
    message_index: int | None
    detail: str
    before: bool  # it happened before its message (else after it)
    summary: str | None = None  # a context summary's whole text
    facts: list[tuple[str, str]] = field(default_factory=list)  # a detection's values, formatted
    created_at: str | None = None
    text: str | None = None  # what an imported log's agent wrote (the lines after the detail)

    @property
    def where(self) -> str:
        """ "before message 12", "after message 12", or "" for an event of no message."""
        if self.message_index is None:
            return ""
        return f"{'before' if self.before else 'after'} message {self.message_index}"

    @property
    def live(self) -> bool:
        """A live detector's finding: what it saw at that message, not the run's verdict (verdict.py)."""
        return self.kind in DETECTION_KINDS

    @property
    def heading(self) -> str:
        """The kind, and for a detection when it was made: `attractor, flagged live at message 7`."""
        if self.live and self.message_index is not None:
            return f"{self.kind}, {WORDS['flagged_live']} at message {self.message_index}"
        return self.kind

    def lines(self) -> list[str]:
        """As `duologue show` prints it: kind and detail, then the summary or the detection's values."""
        out = [f"▸ {self.heading}: {self.detail}"]
        if self.summary:
            out.append(f"  summary: {self.summary}")
        elif self.facts:
            out.append("  " + "  ".join(f"{k} {v}" for k, v in self.facts))
        if self.text:
            out += ["  " + line for line in self.text.split("\n")]
        return out


def describe_event(ev: Mapping[str, Any]) -> EventDescription:
    kind = str(ev.get("kind") or "")
    data = ev.get("data") or {}
    summary = data.get("summary") if kind == "context" and isinstance(data.get("summary"), str) else None
    facts: list[tuple[str, str]] = []
    if kind in DETECTION_KINDS:
        facts = [(k, format_value(v)) for k, v in data.items() if not isinstance(v, (dict, list)) and v is not None]
    detail = str(ev.get("detail") or "")
    text = data.get("text") if kind in AGENT_KINDS and isinstance(data.get("text"), str) else None
    if text is not None and text.startswith(detail):  # an error's text starts with its line, the detail
        text = text[len(detail) :].removeprefix("\n")
    return EventDescription(
        kind=kind,
        message_index=ev.get("message_index"),
        detail=detail,
        before=kind in BEFORE,
        summary=summary or None,
        facts=facts,
        created_at=ev.get("created_at"),
        text=text or None,
    )


def describe_events(events: Iterable[Mapping[str, Any]]) -> list[EventDescription]:
    """Every event in the order it happened along the conversation: by message, the ones before a
    message ahead of it, the ones of no message last; recorded order within each place."""

    def place(item: tuple[int, EventDescription]) -> tuple[int, int, int, int]:
        order, d = item
        if d.message_index is None:
            return (1, 0, 0, order)
        return (0, d.message_index, 0 if d.before else 1, order)

    return [d for _, d in sorted(enumerate(describe_event(ev) for ev in events), key=place)]


@dataclass
class Lineage:
    ancestors: list[tuple[str, int | None]]  # (run id, where its child forked from it), oldest first
    forks: list[tuple[str, int]]  # (run id, fork point) of the runs forked from this one


def lineage(store: Store, run: Run) -> Lineage:
    """The run's ancestors (up to a deleted parent, which still shows) and its forks, read from `store`."""
    ancestors: list[tuple[str, int | None]] = []
    seen = {run.id}
    child = run
    while child.parent_run_id and child.parent_run_id not in seen:
        try:
            parent = store.get_run(child.parent_run_id, with_messages=False)
        except DuologueError:  # the parent was deleted: the lineage stops there
            ancestors.insert(0, (child.parent_run_id, child.fork_at))
            break
        ancestors.insert(0, (parent.id, child.fork_at))
        seen.add(parent.id)
        child = parent
    return Lineage(ancestors, store.list_forks(run.id))
