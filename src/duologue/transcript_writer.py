"""The Markdown transcript next to the store, kept current while a run goes (runs/<run id>.md)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .engine import RunListener
from .errors import TranscriptFormatError
from .records import Message, Run
from .transcripts.jsonfmt import render_json
from .transcripts.markdown import render_run_markdown


def transcript_path(db: str | Path, run_id: str) -> Path:
    """Transcripts live next to the store: runs/<run id>.md."""
    return Path(db).parent / f"{run_id}.md"


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


class TranscriptWriter(RunListener):
    """Keeps the Markdown transcript current while the run goes, and writes it when it ends.

    Each write renders the whole transcript, so with many conversations at once
    (a batch) rewriting after every message would cost O(n) per message: there
    `min_interval` spaces the rewrites out. The store, not this file, is what
    makes a message durable; the file is always complete once the run ends.
    """

    def __init__(self, db: str | Path, *, min_interval: float = 0.0):
        self.db = Path(db)
        self.min_interval = min_interval
        # With an interval, the first rewrite also waits one: short runs are written once, at their end.
        self._last = time.monotonic() if min_interval else float("-inf")

    def _write(self, run: Run) -> None:
        path = transcript_path(self.db, run.id)
        try:
            write_atomically(path, render_run_markdown(run))
        except TranscriptFormatError:
            # A message the Markdown format cannot hold (it contains a block boundary):
            # the run goes on, and its transcript is written as JSON instead.
            write_atomically(path.with_suffix(".json"), render_json(run))

    def message_done(self, run: Run, message: Message) -> None:
        now = time.monotonic()
        if now - self._last >= self.min_interval:
            self._last = now
            self._write(run)

    def run_ended(self, run: Run) -> None:
        self._write(run)
