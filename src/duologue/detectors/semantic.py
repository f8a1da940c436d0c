"""The semantic detectors live: convergence (on_convergence) and attractor themes (on_attractor)."""

from __future__ import annotations

import numpy as np

from ..records import Message
from ..stopping import StopReason, WatchEvent
from . import Detector


class SemanticRule:
    """Runs the semantic detectors after every message: convergence and attractor themes.

    `on_convergence` / `on_attractor` as for LoopRule. The vectors it computes
    are kept (`vectors`), so the run's analysis does not compute them again.
    """

    def __init__(self, spec) -> None:
        from ..analysis.semantic import SemanticWatcher

        self.on = {"convergence": spec.on_convergence, "attractor": spec.on_attractor}
        self.watcher = SemanticWatcher(
            spec.detection.convergence, spec.detection.attractor, end_marker=spec.end_marker or None
        )
        self.vectors: dict[int, np.ndarray] = {}  # by message index

    def observe(self, message: Message):
        from dataclasses import asdict

        from ..analysis.convergence import ConvergenceEvent

        vector = self.watcher.embedder.embed([message.content])[0]
        self.vectors[message.index] = vector
        found = self.watcher.observe(message.speaker, message.content, vector)
        events = []
        for ev in found:
            kind = "convergence" if isinstance(ev, ConvergenceEvent) else "attractor"
            action = self.on[kind]
            if action == "continue":
                continue
            found_data = asdict(ev.convergence) if isinstance(ev, ConvergenceEvent) else asdict(ev.attractor)
            events.append(
                WatchEvent(
                    kind=kind,
                    detail=ev.detail,
                    message_index=message.index,
                    stop=StopReason(kind) if action == "stop" else None,
                    data={"action": action, **found_data},
                )
            )
        return events


DETECTOR = Detector(
    "semantic",
    make=lambda spec, settings: SemanticRule(spec),
    description="semantic convergence and attractor themes (on_convergence, on_attractor, "
    "[detection.convergence], [detection.attractor])",
)
