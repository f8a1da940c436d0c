"""Why a run ended: the StopReason vocabulary, the end-marker and message-limit rules.

The detectors that watch a run as it goes (loops, semantic convergence,
attractors, and any a plugin adds) live in duologue.detectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from .records import Message


class StopReason(str, Enum):  # noqa: UP042  (a StrEnum would change what str() of a member gives)
    MAX_MESSAGES = "max_messages"
    END_MARKER = "end_marker"
    LOOP = "loop"
    NEAR_LOOP = "near_loop"
    CONVERGENCE = "convergence"
    ATTRACTOR = "attractor"
    TOKEN_BUDGET = "token_budget"
    TIME_LIMIT = "time_limit"
    CONTEXT_FULL = "context_full"
    ERROR = "error"
    INTERRUPTED = "interrupted"

    @property
    def resumable(self) -> bool:
        return self in (StopReason.ERROR, StopReason.INTERRUPTED)


@dataclass(frozen=True)
class Stop:
    reason: StopReason | str
    detail: str

    @property
    def value(self) -> str:
        """The stop reason as stored."""
        return self.reason.value if isinstance(self.reason, StopReason) else str(self.reason)


@dataclass(frozen=True)
class WatchEvent:
    """Something a watcher noticed after a message; `stop` set when it ends the run (a StopReason,
    or for a plugin detector its own name)."""

    kind: str
    detail: str
    message_index: int
    stop: StopReason | str | None = None
    data: dict | None = None


def end_marker_stop(messages: Sequence[Message], participants: Sequence[str], marker: str, end_on: str) -> Stop | None:
    """`any`: the latest message carries the marker. `both`: every participant's latest does."""
    if end_on == "never" or not marker or not messages:
        return None
    last = messages[-1]
    if end_on == "any":
        if marker in last.content:
            return Stop(StopReason.END_MARKER, f"{last.speaker} wrote {marker} in message {last.index}")
        return None
    latest: dict[str, Message] = {}
    for m in messages:
        latest[m.speaker] = m
    if all(name in latest and marker in latest[name].content for name in participants):
        return Stop(StopReason.END_MARKER, f"every participant's latest message has {marker}")
    return None


def max_messages_stop(messages: Sequence[Message], limit: int) -> Stop | None:
    if len(messages) >= limit:
        return Stop(StopReason.MAX_MESSAGES, f"reached {limit} messages")
    return None
