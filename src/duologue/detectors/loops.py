"""The loop detectors live: exact loops (on_loop) and near loops (on_near_loop), see analysis/loops.py."""

from __future__ import annotations

from ..analysis.loops import LoopWatcher
from ..records import Message
from ..stopping import StopReason, WatchEvent
from . import Detector


class LoopRule:
    """Runs the loop detectors after every message (a Watcher for the engine).

    `on_loop` / `on_near_loop`: "stop" ends the run, "flag" records an event
    and goes on, "continue" leaves the detector silent (analysis still finds it).
    """

    def __init__(self, spec) -> None:
        self.on = {"loop": spec.on_loop, "near_loop": spec.on_near_loop}
        self.stop_reason = {"loop": StopReason.LOOP, "near_loop": StopReason.NEAR_LOOP}
        self.watcher = LoopWatcher(
            n_speakers=len(spec.participants),
            params=spec.detection.loop,
            end_marker=spec.end_marker or None,
        )

    def observe(self, message: Message):
        events = []
        for ev in self.watcher.observe(message.content):
            action = self.on[ev.kind]
            if action == "continue":
                continue
            events.append(
                WatchEvent(
                    kind=ev.kind,
                    detail=ev.detail,
                    message_index=ev.message_index,
                    stop=self.stop_reason[ev.kind] if action == "stop" else None,
                    data={"action": action, **_loop_data(ev.loop)},
                )
            )
        return events


def _loop_data(loop) -> dict:
    from dataclasses import asdict

    data = asdict(loop)
    data.pop("near_duplicates", None)  # per-message list: the analysis keeps it, the event need not
    return data


DETECTOR = Detector(
    "loops",
    make=lambda spec, settings: LoopRule(spec),
    description="exact loops and near loops (on_loop, on_near_loop, [detection])",
)
