"""A batch's counts (`BatchTotals`, kept by the `BatchCounter` listener) and its progress display:
conversations finished, stopped early and errored, running, messages, tokens/s, detections, ETA."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

from rich.cells import cell_len
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from .engine import RunListener
from .records import Message, Run
from .stopping import WatchEvent
from .vocabulary import WORDS


@dataclass
class BatchTotals:
    """What the progress display shows; updated by the conversations as they go."""

    total: int
    skipped: int = 0
    done: int = 0
    running: int = 0
    errors: int = 0
    messages: int = 0
    completion_tokens: int = 0
    # How the conversations run by this batch ended: reached their message limit or end marker; stopped
    # early by a detector or a limit (loop, near_loop, convergence, attractor, token_budget, time_limit,
    # context_full); or with an error.
    finished: int = 0
    stopped_early: int = 0
    errored: int = 0
    # Conversations of this batch a live detector flagged, of each kind (recorded or stopped at; not
    # "continue"): what the detectors saw while the runs went on, not the verdict of their stored analyses.
    loops: int = 0
    near_loops: int = 0
    convergences: int = 0
    attractors: int = 0
    started: float = field(default_factory=time.monotonic)
    max_running: int = 0

    @property
    def tokens_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.completion_tokens / elapsed if elapsed > 0 else 0.0


# A detection's kind → the BatchTotals field counting the conversations with one.
DETECTION_FIELDS = {
    "loop": "loops",
    "near_loop": "near_loops",
    "convergence": "convergences",
    "attractor": "attractors",
}
RAN_THROUGH = ("max_messages", "end_marker")


class BatchCounter(RunListener):
    def __init__(self, totals: BatchTotals, on_change):
        self.totals = totals
        self.on_change = on_change
        self._seen: set[tuple[str, str]] = set()  # (run id, kind): each conversation counted once per kind

    def message_done(self, run: Run, message: Message) -> None:
        self.totals.messages += 1
        self.totals.completion_tokens += message.completion_tokens or 0
        self.on_change()

    def event(self, run: Run, event: WatchEvent) -> None:
        field_name = DETECTION_FIELDS.get(event.kind)
        if field_name and (run.id, event.kind) not in self._seen:
            self._seen.add((run.id, event.kind))
            setattr(self.totals, field_name, getattr(self.totals, field_name) + 1)
            self.on_change()

    def ended(self, run: Run | None) -> None:
        """A conversation of this batch is over: finished, stopped early or errored."""
        if run is None or run.status != "finished":
            self.totals.errored += 1
        elif run.stop_reason in RAN_THROUGH:
            self.totals.finished += 1
        else:
            self.totals.stopped_early += 1


class _Lines(Progress):
    """A progress bar with the counts that do not fit beside it on lines of their own."""

    heading: str | None = None  # the experiment's name, on a line of its own when it leaves the bar no room

    def get_renderables(self):
        if self.heading:
            yield Text(self.heading, style="bold", overflow="fold")
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            for line in task.fields.get("below", ()):
                yield Text(line, style="dim", overflow="fold")


class BatchProgressDisplay:
    """The progress of `arun_experiment(on_progress=...)`. On a terminal: a bar with how many conversations
    finished, stopped early and errored (one line at 80 columns), and below it what is running, the messages,
    tokens/s, the ETA and the detections; redrawn at most 10 times a second. Not on a terminal (stderr
    redirected): a plain line each time a conversation ends, no control codes."""

    def __init__(self, name: str, console: Console | None = None):
        self.name = name
        self.console = console or Console(stderr=True, highlight=False)
        self.live = self.console.is_terminal
        # The name beside the bar while it leaves the bar (10), the counts (up to 9999 conversations), the
        # elapsed time and the spaces between room; else on a line above.
        beside = cell_len(name) + 1 + 10 + len(" 9999/9999 finished 999 · stopped early 999 · errored 999 0:00:00")
        name_column = (
            [TextColumn("{task.description}", style="bold", markup=False)] if beside <= self.console.width else []
        )
        self.progress = _Lines(
            *name_column,
            BarColumn(bar_width=None, table_column=Column(ratio=1)),
            MofNCompleteColumn(),
            TextColumn("{task.fields[ended]}", markup=False),
            TimeElapsedColumn(),
            console=self.console,
            refresh_per_second=10,
            expand=True,
        )
        self.progress.heading = None if name_column else name
        self.task = self.progress.add_task(name, total=None, ended="", below=())
        self._last = 0.0
        self._printed = -1  # how many conversations were over at the last plain line

    def __enter__(self) -> BatchProgressDisplay:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.stop()

    def update(self, totals: BatchTotals) -> None:
        finished = totals.skipped + totals.done
        if not self.live:
            if finished != self._printed:
                self._printed = finished
                self.console.print(
                    Text(f"{self.name}: {finished}/{totals.total} {progress_counts(totals)}"), soft_wrap=True
                )
            return
        now = time.monotonic()
        if now - self._last < 0.1 and finished < totals.total:
            return  # per message is often; the display need not be
        self._last = now
        self.progress.update(self.task, total=totals.total, completed=finished, ended=ended_counts(totals))
        task = self.progress.tasks[0]
        eta = "-" if task.time_remaining is None else str(timedelta(seconds=round(task.time_remaining)))
        below = (
            f"running {totals.running} · msgs {totals.messages} · {totals.tokens_per_second:.1f} tok/s · eta {eta}"
            + (f" · {totals.skipped} done before" if totals.skipped else ""),
            f"{WORDS['flagged_live']}: {detection_counts(totals)}",
        )
        self.progress.update(self.task, below=below)


def ended_counts(totals: BatchTotals) -> str:
    """How the conversations run so far ended, each way apart."""
    return f"finished {totals.finished} · stopped early {totals.stopped_early} · errored {totals.errored}"


def progress_counts(totals: BatchTotals) -> str:
    """How far the batch is beside its n/N: the conversations found done already (an earlier run of the
    batch) apart from how this batch's ended, so that a re-run with nothing to do does not read as 0 finished."""
    if totals.skipped:
        return f"({totals.skipped} done before) {ended_counts(totals)}"
    return ended_counts(totals)


def detection_counts(totals: BatchTotals) -> str:
    """Conversations a live detector flagged, of each kind, in the words `report` and `run` use."""
    return (
        f"loop {totals.loops} · {WORDS['near_loop']} {totals.near_loops} · {WORDS['convergence']} "
        f"{totals.convergences} · {WORDS['attractor']} {totals.attractors}"
    )


def flagged_live(totals: BatchTotals) -> dict[str, int]:
    """The live counts for JSON, keyed by the detections' kinds."""
    return {kind: getattr(totals, name) for kind, name in DETECTION_FIELDS.items()}
