"""Why a run ended: the StopReason vocabulary and the end-marker rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from .analysis.loops import LoopWatcher
from .analysis.params import detection_params
from .records import Message

if TYPE_CHECKING:
    import numpy as np


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

    `on_loop` / `on_near_loop`: "stop" ends the run, "flag" records an event
    and goes on, "continue" leaves the detector silent (analysis still finds it).
    """

    def __init__(self, spec) -> None:
        self.on = {"loop": spec.on_loop, "near_loop": spec.on_near_loop}
        self.stop_reason = {"loop": StopReason.LOOP, "near_loop": StopReason.NEAR_LOOP}
        loop, _, _ = detection_params(spec.detection.model_dump())
        self.watcher = LoopWatcher(
            n_speakers=len(spec.participants),
            params=loop,
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


class SemanticRule:
    """Runs the semantic detectors after every message: convergence and attractor themes.

    `on_convergence` / `on_attractor` as for LoopRule. The vectors it computes
    are kept (`vectors`), so the run's analysis does not compute them again.
    """

    def __init__(self, spec) -> None:
        from .analysis.semantic import SemanticWatcher

        _, convergence, attractor = detection_params(spec.detection.model_dump())
        self.on = {"convergence": spec.on_convergence, "attractor": spec.on_attractor}
        self.watcher = SemanticWatcher(convergence, attractor, end_marker=spec.end_marker or None)
        self.vectors: dict[int, np.ndarray] = {}

    def observe(self, message: Message):
        from dataclasses import asdict

        from .analysis.convergence import ConvergenceEvent

        found = self.watcher.observe(message.speaker, message.content)
        self.vectors[message.index] = self.watcher.vectors[-1]
        events = []
        for ev in found:
            kind = "convergence" if isinstance(ev, ConvergenceEvent) else "attractor"
            action = self.on[kind]
            if action == "continue":
                continue
            found_data = asdict(ev.convergence) if isinstance(ev, ConvergenceEvent) else asdict(ev.attractor)
            events.append(WatchEvent(
                kind=kind, detail=ev.detail, message_index=message.index,
                stop=StopReason(kind) if action == "stop" else None,
                data={"action": action, **found_data},
            ))
        return events


def _loop_data(loop) -> dict:
    from dataclasses import asdict

    data = asdict(loop)
    data.pop("near_duplicates", None)  # per-message list: the analysis keeps it, the event need not
    return data
