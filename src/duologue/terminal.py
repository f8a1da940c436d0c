"""The terminal renderer: streams a run to the console, each speaker in a colour.

When its output is closed (`duologue run | head -3`), it stops writing and
cancels the run's task, so the engine ends the run as `interrupted` (resumable)
instead of the process dying in the middle of it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console
from rich.text import Text

from .backends.base import RetryNotice
from .engine import RunListener, WatchEvent
from .records import Message, Run

SPEAKER_STYLES = ["bold cyan", "bold magenta", "bold green", "bold yellow", "bold blue", "bold red"]
TEXT_STYLES = ["cyan", "magenta", "green", "yellow", "blue", "red"]


class PipeConsole(Console):
    """A Console that, when its reader goes away, goes quiet and raises BrokenPipeError for its caller to
    handle (rich's own Console exits the process there)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


class TerminalRenderer(RunListener):
    """Prints each message as it streams. Model output goes through rich.Text, which
    strips control codes, so a model cannot move the cursor or change the terminal."""

    def __init__(self, console: Console | None = None, *, show_meta: bool = False):
        self.console = console or PipeConsole(highlight=False)
        self.show_meta = show_meta
        self._streamed = False
        self.output_closed = False  # the reader went away (a closed pipe): nothing more is written
        self._task: asyncio.Task | None = None  # the task running the conversation, cancelled then
        self._ended = False

    def _print(self, *objects: Any, **kwargs: Any) -> None:
        if self.output_closed:
            return
        try:
            self.console.print(*objects, **kwargs)
        except BrokenPipeError:
            self.output_closed = True
            # Stop the run: the engine stores it as interrupted at its next await. Once the run has
            # ended there is nothing left to stop.
            if self._task is not None and not self._ended:
                self._task.cancel()

    def _style(self, run: Run, speaker: str, table: list[str]) -> str:
        if speaker in run.participants:
            return table[run.participants.index(speaker) % len(table)]
        return "bold white" if table is SPEAKER_STYLES else "white"

    def run_started(self, run: Run, resumed: bool) -> None:
        try:
            self._task = asyncio.current_task()
        except RuntimeError:  # not called from a coroutine: nothing to cancel
            self._task = None
        self._ended = False
        self._print(Text(f"# {run.title}", style="bold"))
        verb = "resuming" if resumed and run.parent_run_id is None else "run"
        self._print(Text(f"{verb} {run.id}", style="dim"))
        if run.parent_run_id:
            self._print(Text(f"forked from {run.parent_run_id} at message {run.fork_at}", style="dim"))
        elif resumed:
            self._print(Text(f"{len(run.messages)} messages already stored", style="dim"))

    def message_started(self, run: Run, index: int, speaker: str) -> None:
        self._print()
        self._print(
            Text(f"### {speaker}", style=self._style(run, speaker, SPEAKER_STYLES)), Text(f"  #{index}", style="dim")
        )
        self._streamed = False

    def text(self, run: Run, index: int, speaker: str, delta: str) -> None:
        self._print(Text(delta, style=self._style(run, speaker, TEXT_STYLES)), end="", soft_wrap=True)
        self._streamed = True

    def retry(self, run: Run, index: int, speaker: str, notice: RetryNotice) -> None:
        self._print()
        self._print(Text(f"  ↻ attempt {notice.attempt + 1} in {notice.wait:.1f}s: {notice.cause}", style="yellow"))

    def message_done(self, run: Run, message: Message) -> None:
        if not self._streamed:  # the opener, or a backend that did not stream
            self._print(
                Text(message.content, style=self._style(run, message.speaker, TEXT_STYLES)), end="", soft_wrap=True
            )
        self._print()
        if self.show_meta and message.completion_tokens is not None:
            self._print(Text(format_message_meta(message), style="dim"))

    def event(self, run: Run, event: WatchEvent) -> None:
        if event.kind in ("injection", "change", "context", "window"):  # perturbations and context trims: a note
            self._print()
            self._print(Text(f"▸ {event.kind}: {event.detail}", style="dim yellow"))
            return
        style = "bold red" if event.stop else "bold yellow"
        label = "stopping: " if event.stop else ""
        self._print(Text(f"⟳ {label}{event.kind} detected: {event.detail}", style=style))

    def run_ended(self, run: Run) -> None:
        self._ended = True
        self._print()


def format_message_meta(m: Message) -> str:
    parts = []
    if m.prompt_tokens is not None:
        cached = f" ({m.cached_tokens} cached)" if m.cached_tokens else ""
        parts.append(f"prompt {m.prompt_tokens}{cached}")
    if m.completion_tokens is not None:
        parts.append(f"completion {m.completion_tokens}")
    if m.draft_tokens:
        parts.append(f"drafts {m.accepted_tokens}/{m.draft_tokens} accepted")
    if m.ttft is not None:
        parts.append(f"ttft {m.ttft:.2f}s")
    if m.latency is not None:
        parts.append(f"latency {m.latency:.2f}s")
    if m.finish_reason:
        parts.append(f"finish {m.finish_reason}")
    if m.attempts > 1:
        parts.append(f"attempts {m.attempts}")
    return " · ".join(parts)
