"""Interactive mode: a person pauses the conversation and speaks in it.

While the run streams, a line typed on the terminal (Enter alone will do)
asks for a pause. The run pauses after the message being written, and the
person is asked who speaks — a participant by name or number, or any other
name for an outside voice — and what they say. An empty line resumes. Each
message said is put into the run as the next message, stored as injected, and
the next speaker sees it like any other message.

The terminal stays in its ordinary line mode: the event loop watches standard
input for complete lines, which needs no raw mode and leaves Ctrl-C alone.
Input is read straight from the file descriptor, with our own buffer, so that
lines typed ahead of a prompt are neither lost nor read twice. Output goes to
our own copy of the standard output descriptor: llama-cpp-python points fd 1
at /dev/null while it loads a model (in a worker thread), and a pause asked
for meanwhile must still be acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from .engine import Interjection
from .records import Run


class TerminalInterjector:
    """The engine's Interjector for a person at a terminal (or anything that writes lines to `fd`)."""

    def __init__(self, console: Console | None = None, *, fd: int | None = None, renderer=None):
        """`renderer`: the TerminalRenderer showing the run, if any; a pause asked for while it writes a
        message is acknowledged once that message has ended, on a line of its own."""
        self.renderer = renderer
        self._own_output = None
        if console is None:
            self._own_output = _own_stdout()
            console = Console(file=self._own_output, highlight=False)
        self.console = console
        if fd is None:
            fd = sys.stdin.fileno() if sys.stdin is not None else -1  # -1: no input at all; no pauses then
        self.fd = fd
        self._typed = bytearray()  # read from the terminal, not yet taken as a line
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watching = False
        self._pause_asked = False
        self._eof = False

    # -- watching for the pause key while the run goes on ----------------------

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The run's event loop, known from the first between_turns on."""
        assert self._loop is not None, "the interjector is used before between_turns"
        return self._loop

    def _watch(self) -> None:
        if not self._watching and not self._eof:
            try:
                self._running_loop().add_reader(self.fd, self._on_typed)
            except (OSError, ValueError):  # a closed input, or a file (/dev/null) that cannot be polled
                self._eof = True
                self._say("interactive: no input to read from; the run goes on without pauses", "yellow")
                return
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self._running_loop().remove_reader(self.fd)
            self._watching = False

    def _on_typed(self) -> None:
        if not self._read_some():
            return
        if b"\n" in self._typed:
            # The line that asked for the pause is spent; anything typed after it is for the prompts.
            _, _, rest = self._typed.partition(b"\n")
            self._typed = bytearray(rest)
            self._pause_asked = True
            self._unwatch()
            if self.renderer is not None:
                self.renderer.after_message(self._pausing)
            else:
                self._pausing()

    def _pausing(self) -> None:
        if self._pause_asked:  # (not yet paused: a notice deferred past the pause would come too late)
            self._say("⏸ pausing after this message…", "bold yellow")

    def _read_some(self) -> bool:
        try:
            data = os.read(self.fd, 4096)
        except (BlockingIOError, InterruptedError):
            return False
        if not data:  # end of input: nobody can pause any more
            self._eof = True
            self._unwatch()
            return False
        self._typed += data
        return True

    # -- the engine's side -----------------------------------------------------

    async def between_turns(self, run: Run) -> list[Interjection]:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._watch()
            if self._watching:
                self._say("interactive: press Enter to pause after the current message and speak", "dim")
        if not self._pause_asked:
            return []
        self._pause_asked = False
        said = await self._converse(run.participants)
        self._watch()
        return said

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._unwatch()
        if self._own_output is not None and self._own_output is not sys.stdout:
            self._own_output.close()
            self._own_output = None

    # -- the pause -------------------------------------------------------------

    async def _converse(self, participants: Sequence[str]) -> list[Interjection]:
        voices = ", ".join(f"{i} {name}" for i, name in enumerate(participants, 1))
        self._say(
            f"⏸ paused. Speak as {voices}, or give another name for an outside voice; an empty line resumes.",
            "bold yellow",
            newline_before=True,
        )
        said: list[Interjection] = []
        while True:
            who = await self._ask("as> ")
            if who is None or not who.strip():
                break
            who = who.strip()
            if who.isdigit() and 1 <= int(who) <= len(participants):
                who = participants[int(who) - 1]
            if "↔" in who:
                self._say("a name cannot contain '↔'", "red")
                continue
            text = await self._ask(f"{who}> ")
            if text is None:
                break
            if not text.strip():
                self._say("(nothing said)", "dim")
                continue
            said.append(Interjection(who, text))
            self._say(f"✎ {who} will say that next", "dim")
        self._say("▶ resuming", "bold yellow")
        return said

    async def _ask(self, prompt: str) -> str | None:
        """One line from the person, or None at the end of input."""
        self.console.print(Text(prompt, style="bold"), end="")
        self.console.file.flush()
        loop = self._running_loop()
        while b"\n" not in self._typed and not self._eof:
            readable: asyncio.Future[None] = loop.create_future()

            def wake(fut: asyncio.Future[None] = readable) -> None:
                if not fut.done():
                    fut.set_result(None)

            try:
                loop.add_reader(self.fd, wake)
            except (OSError, ValueError):
                self._eof = True
                break
            try:
                await readable
            finally:
                loop.remove_reader(self.fd)
            self._read_some()
        line: bytes
        if b"\n" in self._typed:
            head, _, rest = self._typed.partition(b"\n")
            line, self._typed = bytes(head), bytearray(rest)
        elif self._typed:
            line, self._typed = bytes(self._typed), bytearray()
        else:
            self.console.print()
            return None
        return line.decode("utf-8", errors="replace").rstrip("\r")

    def _say(self, text: str, style: str, *, newline_before: bool = False) -> None:
        if sys.stdout is not None and self.console.file is not sys.stdout:
            try:  # the run's text, written to sys.stdout, comes first
                sys.stdout.flush()
            except (OSError, ValueError):
                pass
        if newline_before:
            self.console.print()
        self.console.print(Text(text, style=style))
        self.console.file.flush()


def _own_stdout():
    """A file on a duplicate of the standard output descriptor (or stdout itself when it has none)."""
    try:
        return os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
    except (AttributeError, OSError, ValueError):
        return sys.stdout
