"""The batch progress display: conversations done and running, messages, tokens/s, loops, ETA."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .batch import BatchTotals


class BatchProgressDisplay:
    """A rich progress bar fed by `arun_experiment(on_progress=...)`; redrawn at most 10 times a second."""

    def __init__(self, name: str, console: Console | None = None):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("running {task.fields[running]}"),
            TextColumn("msgs {task.fields[messages]}"),
            TextColumn("{task.fields[tps]:.1f} tok/s"),
            TextColumn("loops {task.fields[loops]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            refresh_per_second=10,
        )
        self.task = self.progress.add_task(name, total=None, running=0, messages=0, tps=0.0, loops=0)
        self._last = 0.0

    def __enter__(self) -> BatchProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, totals: BatchTotals) -> None:
        now = time.monotonic()
        finished = totals.skipped + totals.done
        if now - self._last < 0.1 and finished < totals.total:
            return  # per message is often; the display need not be
        self._last = now
        self.progress.update(
            self.task,
            total=totals.total,
            completed=finished,
            running=totals.running,
            messages=totals.messages,
            tps=totals.tokens_per_second,
            loops=totals.loops,
        )
