"""Why a run ended: the StopReason vocabulary and the end-marker rule."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Sequence

from .analysis.loops import LoopParams, LoopWatcher
from .records import Message


class StopReason(str, Enum):
    MAX_MESSAGES = "max_messages"
    END_MARKER = "end_marker"
    LOOP = "loop"
    CONVERGENCE = "convergence"
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
    reason: StopReason
    detail: str


@dataclass(frozen=True)
class WatchEvent:
    """Something a watcher noticed after a message; `stop` set when it ends the run."""

    kind: str
    detail: str
    message_index: int
    stop: StopReason | None = None
    data: dict | None = None


def end_marker_stop(
    messages: Sequence[Message], participants: Sequence[str], marker: str, end_on: str
) -> Stop | None:
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


class LoopRule:
    """Runs the loop detectors after every message (a Watcher for the engine).

    `on_loop` / `on_convergence`: "stop" ends the run, "flag" records an event
    and goes on, "continue" leaves the detector silent (analysis still finds it).
    """

    def __init__(self, spec) -> None:
        self.on = {"loop": spec.on_loop, "convergence": spec.on_convergence}
        self.stop_reason = {"loop": StopReason.LOOP, "convergence": StopReason.CONVERGENCE}
        self.watcher = LoopWatcher(
            n_speakers=len(spec.participants),
            params=LoopParams(**spec.detection.model_dump()),
            end_marker=spec.end_marker or None,
        )

    def observe(self, message: Message):
        events = []
        for ev in self.watcher.observe(message.content):
            action = self.on[ev.kind]
            if action == "continue":
                continue
            events.append(WatchEvent(
                kind=ev.kind, detail=ev.detail, message_index=ev.message_index,
                stop=self.stop_reason[ev.kind] if action == "stop" else None,
                data={"action": action, **_loop_data(ev.loop)},
            ))
        return events


def _loop_data(loop) -> dict:
    from dataclasses import asdict

    data = asdict(loop)
    data.pop("near_duplicates", None)  # per-message list: the analysis keeps it, the event need not
    return data
