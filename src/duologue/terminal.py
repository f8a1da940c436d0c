"""The terminal renderer: streams a run to the console, each speaker in a colour.

When its output is closed (`duologue run | head -3`), it stops writing and
cancels the run's task, so the engine ends the run as `interrupted` (resumable)
instead of the process dying in the middle of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.text import Text

from .backends.base import RetryNotice
from .engine import RunListener, WatchEvent
from .events import BEFORE
from .records import Message, Run
from .stopping import format_usd

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
        if console is None:
            console = PipeConsole(highlight=False)
            console.soft_wrap = not console.is_terminal  # piped: no line is wrapped
        self.console = console
        self.show_meta = show_meta
        self._streamed = False
        self.output_closed = False  # the reader went away (a closed pipe): nothing more is written
        self._task: asyncio.Task | None = None  # the task running the conversation, cancelled then
        self._ended = False
        self.mid_message = False  # between a message's header and its end
        self._after_message: list[Callable[[], None]] = []  # said once the message being written ends
        self._injections: dict[int, str] = {}  # message index -> where its injection came from

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
        source = self._injections.pop(index, None)
        mark = f"  injected ({'typed in' if source == 'interactive' else 'from the spec'})" if source else ""
        self._print(
            Text(f"### {speaker}", style=self._style(run, speaker, SPEAKER_STYLES)),
            Text(f"  #{index}{mark}", style="dim"),
        )
        self._streamed = False
        self.mid_message = True

    def after_message(self, say: Callable[[], None]) -> None:
        """Call `say` once the message being written has ended (at once when none is): a notice then gets
        a line of its own instead of cutting into the streamed text."""
        if self.mid_message and not self._ended:
            self._after_message.append(say)
        else:
            say()

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
        if self.show_meta and not message.injected:  # a server that reports no usage: its timings all the same
            meta = format_message_meta(message)
            if message.completion_tokens is None:
                meta = " · ".join(part for part in ("tokens not reported", meta) if part)
            self._print(Text(meta, style="dim"))
        self.mid_message = False
        self._flush_after_message()

    def _flush_after_message(self) -> None:
        said, self._after_message = self._after_message, []
        if said and not self.output_closed:
            with contextlib.suppress(BrokenPipeError, ValueError):
                self.console.file.flush()  # what was printed comes before the notice (it may write elsewhere)
        for say in said:
            say()

    def event(self, run: Run, event: WatchEvent) -> None:
        if event.kind == "injection":  # the message itself follows, marked injected: its text is shown once
            self._injections[event.message_index] = (event.data or {}).get("source", "spec")
            return
        if event.kind in BEFORE:  # perturbations and context trims (events.BEFORE, injections above): a note
            self._print()
            self._print(Text(f"▸ {event.kind}: {event.detail}", style="dim yellow"))
            return
        style = "bold red" if event.stop else "bold yellow"
        label = "stopping: " if event.stop else ""
        self._print(Text(f"⟳ {label}{event.kind} detected: {event.detail}", style=style))

    def run_ended(self, run: Run) -> None:
        self._ended = True
        self.mid_message = False
        self._flush_after_message()
        self._print()


def format_message_meta(m: Message) -> str:
    parts = []
    if m.prompt_tokens is not None:
        cache = [f"{m.cached_tokens} cached"] if m.cached_tokens else []
        cache += [f"{m.cache_write_tokens} written to cache"] if m.cache_write_tokens else []
        cached = f" ({', '.join(cache)})" if cache else ""
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
    # A known price (an unknown one is said once, with its reason, on the run's cost line; free is no news).
    if m.cost is not None and not (m.cost_source or "").startswith("free"):
        parts.append(f"cost {format_usd(m.cost)}")
    return " · ".join(parts)
