"""What a conversation leaves behind: runs and their messages.

These are plain dataclasses shared by the engine, the store, the transcript
renderers and the analysis. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# The model of an imported participant: one duologue cannot run as its file names it (fork asks for one).
IMPORTED_MODEL = "imported"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Message:
    """One complete message of a run, as produced (content verbatim)."""

    index: int  # 1-based; the opener is message 1
    speaker: str  # the participant's display name (or an outside voice)
    content: str
    model: str | None = None
    reasoning: str | None = None  # kept apart, never shown to the other side by default
    started_at: datetime | None = None
    ended_at: datetime | None = None
    ttft: float | None = None  # seconds to the first streamed token
    latency: float | None = None  # seconds from request to the last token
    prompt_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens reused from the context (not evaluated)
    completion_tokens: int | None = None
    cache_write_tokens: int | None = None  # prompt tokens written to a provider's cache (Anthropic)
    # Lookup decoding (the embedded engine): completion tokens drafted from the history, and those accepted.
    draft_tokens: int | None = None
    accepted_tokens: int | None = None
    finish_reason: str | None = None
    attempts: int = 1
    injected: bool = False  # written by the opener, a person or a perturbation, not generated
    # What generating it cost in USD (None: unknown, or not recorded), and where that figure comes from or
    # why it is unknown: "reported by openrouter", "genai-prices 0.2.3", "free: embedded model",
    # "unknown: model not in the price data (genai-prices 0.2.3)". Injected messages cost nothing.
    cost: float | None = None
    cost_source: str | None = None


@dataclass
class Event:
    """Something recorded along a run besides its messages (a row of the store's events table): what an
    imported file holds that is not a message, e.g. a UniversalBackrooms media agent's block."""

    kind: str
    detail: str
    message_index: int | None = None  # the message it is attached to (after it, unless its kind says before)
    data: dict[str, Any] | None = None


@dataclass
class Run:
    """One executed (or imported) conversation."""

    id: str
    spec: dict[str, Any]  # ConversationSpec.model_dump(mode="json"); never holds secrets
    participants: list[str]  # display names in speaking order
    started_at: datetime
    ended_at: datetime | None = None
    # running | finished | interrupted | error; read from the store, "killed" for a running run whose process is gone
    status: str = "running"
    stop_reason: str | None = None
    stop_detail: str | None = None
    duologue_version: str | None = None
    parent_run_id: str | None = None
    fork_at: int | None = None
    experiment_id: str | None = None
    experiment_cell: dict[str, Any] | None = None  # which cell of the experiment's matrix, and which repeat
    source: str | None = None  # e.g. the path of an imported transcript
    # An imported run: the SHA-256 of the file it came from, so importing the file again adds nothing.
    source_hash: str | None = None
    # The price data its messages' costs come from (e.g. "genai-prices 0.2.3"; the latest resume's).
    price_data: str | None = None
    messages: list[Message] = field(default_factory=list)
    # An imported run: what its file recorded besides the messages, stored with it as events.
    events: list[Event] = field(default_factory=list)

    @property
    def title(self) -> str:
        return " ↔ ".join(self.participants)

    @property
    def models(self) -> list[str | None]:
        """Each participant's model, in the spec's order. An imported participant (model `imported`: duologue
        cannot run it as named), or one the spec gives no model, shows the model its file names: on its first
        message, else the file's list of models at its position (a UniversalBackrooms header or file name),
        else what the spec says."""
        first: dict[str, str | None] = {}
        for m in self.messages:
            first.setdefault(m.speaker, m.model)
        named = (self.spec.get("metadata") or {}).get("models")
        named = named if isinstance(named, list) else []
        out: list[str | None] = []
        for k, p in enumerate(self.spec.get("participants", [])):
            model = p.get("model")
            if model in (None, IMPORTED_MODEL):
                model = first.get(p.get("name")) or (str(named[k]) if k < len(named) else None) or model
            out.append(model)
        return out
