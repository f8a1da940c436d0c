r"""The Markdown transcript format (docs/transcript-format.md), both ways.

A file is a header followed by one block per message:

    # {name A} ↔ {name B}\n
    \n
    **Started:** YYYY-MM-DD HH:MM:SS\n
    **Ended:** YYYY-MM-DD HH:MM:SS\n
    **Messages:** N\n
    \n
    ---\n
    \n
    ### {speaker}\n          <- one block per message
    \n
    {content, verbatim}\n
    \n
    ---\n
    \n

Content is kept byte for byte, so models that write `---` lines, blank lines
or trailing spaces round-trip. Only "\n\n---\n\n### {known name}\n\n" ends a
block, where the known names are those of the title (plus any outside voices
the caller names). The one thing the format cannot hold is a message whose
content, followed by "\n\n", contains that sequence for one of the speakers:
`render_markdown` refuses such a transcript (JSON holds it) rather than write
a file that reads back differently.

Line endings: the format is LF. A file saved with Windows line endings (its
title line ends in CRLF) is read as if every CRLF were LF, and a leading BOM is
ignored; rendering always writes LF. In an LF file a CR inside a message is
content and is kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

from ..errors import TranscriptFormatError
from ..records import Message, Run

TITLE_SEPARATOR = " ↔ "
SEPARATOR = "\n\n---\n\n"  # ends every block, the last one included
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_COUNT = re.compile(r"0|[1-9][0-9]*")  # no leading zeros: they would not render back


@dataclass
class TranscriptMessage:
    speaker: str
    content: str


@dataclass
class Transcript:
    participants: list[str]
    started: datetime  # naive local wall-clock time, second precision
    ended: datetime
    messages: list[TranscriptMessage]


# -- rendering ---------------------------------------------------------------


def render_markdown(t: Transcript) -> str:
    """The transcript in the seed format; refuses one that would not read back the same."""
    _check_representable(t)
    header = (
        f"# {TITLE_SEPARATOR.join(t.participants)}\n\n"
        f"**Started:** {_format_time(t.started)}\n"
        f"**Ended:** {_format_time(t.ended)}\n"
        f"**Messages:** {len(t.messages)}\n\n"
        "---\n\n"
    )
    return header + "".join(f"### {m.speaker}\n\n{m.content}{SEPARATOR}" for m in t.messages)


def _check_representable(t: Transcript) -> None:
    # Writing such a file would not fail loudly later: the reader would split
    # or merge messages and could still arrive at the header's count.
    names = list(dict.fromkeys([*t.participants, *(m.speaker for m in t.messages)]))
    for name in names:
        if _bad_name(name):
            raise TranscriptFormatError(f"the Markdown format cannot hold the speaker name {name!r}")
    boundary = _boundary(names)
    for number, m in enumerate(t.messages, 1):
        # "\n\n" because the separator after the content can complete a boundary.
        if boundary.search(m.content + "\n\n"):
            raise TranscriptFormatError(
                f"message {number} contains '---' followed by a '### {{speaker}}' heading, "
                "which the Markdown format cannot hold; export it as JSON"
            )


def _bad_name(name: str) -> bool:
    return not name or name != name.strip() or "\n" in name or "↔" in name


def _boundary(speakers: Iterable[str]) -> re.Pattern[str]:
    return re.compile(re.escape(SEPARATOR) + "### (?:" + "|".join(map(re.escape, sorted(speakers))) + ")\n\n")


def _format_time(moment: datetime) -> str:
    if moment.tzinfo is not None:
        raise ValueError("transcript times are naive local wall-clock times, got one with a zone")
    # Not strftime: it does not zero-pad years before 1000 on every platform.
    return moment.replace(microsecond=0).isoformat(sep=" ")


# -- parsing -----------------------------------------------------------------


def parse_markdown(text: str, extra_speakers: Iterable[str] = ()) -> Transcript:
    """Read a transcript; `extra_speakers` names outside voices that may also speak."""
    if not text:
        raise TranscriptFormatError("empty file: expected a transcript starting with '# {name} ↔ {name}'")
    text = _as_lf(text)
    lines = text.split("\n", 8)  # the eight header lines, then the blocks

    def header_line(number: int, prefix: str, expected: str) -> str:
        # A line counts only once its "\n" is there, hence `<=`.
        if len(lines) <= number or not lines[number - 1].startswith(prefix):
            raise TranscriptFormatError(f"line {number}: expected {expected}")
        return lines[number - 1][len(prefix) :]

    def fixed_line(number: int, line: str) -> None:
        expected = repr(line) if line else "an empty line"
        if header_line(number, line, expected) != "":
            raise TranscriptFormatError(f"line {number}: expected {expected}")

    participants = header_line(1, "# ", "the title '# {name} ↔ {name}'").split(TITLE_SEPARATOR)
    for name in participants:
        if _bad_name(name):
            raise TranscriptFormatError(f"line 1: bad participant name {name!r} in the title")
    fixed_line(2, "")
    started = _parse_time(header_line(3, "**Started:** ", "'**Started:** YYYY-MM-DD HH:MM:SS'"), 3, "Started")
    ended = _parse_time(header_line(4, "**Ended:** ", "'**Ended:** YYYY-MM-DD HH:MM:SS'"), 4, "Ended")
    count = header_line(5, "**Messages:** ", "'**Messages:** N'")
    if not _COUNT.fullmatch(count):
        raise TranscriptFormatError(f"line 5: expected '**Messages:** N' with N a whole number, got {count!r}")
    fixed_line(6, "")
    fixed_line(7, "---")
    fixed_line(8, "")

    speakers = set(participants) | set(extra_speakers)
    messages = _parse_blocks(text, len(text) - len(lines[8]), speakers)
    if len(messages) != int(count):
        problem = f"header says {count} messages but the file has {len(messages)}"
        if len(messages) < int(count):
            _raise_on_unknown_heading(text, speakers)  # the likeliest reason blocks went missing
        else:
            problem += " (does a message itself contain '---' and a '### {speaker}' heading?)"
        raise TranscriptFormatError(problem)
    return Transcript(participants, started, ended, messages)


def parse_markdown_with_voices(text: str) -> Transcript:
    """Read a transcript that may hold outside voices, without being told their names.

    A heading after a separator names an outside voice (an injection, a person
    in interactive mode) only when reading it as one makes the file add up: the
    header's message count comes out right and the first message is a
    participant's, as duologue's opener always is. Otherwise the strict
    parser's error stands, so a malformed file is still reported as such.
    """
    try:
        return parse_markdown(text)
    except TranscriptFormatError as strict:
        lf = _as_lf(text)
        title = lf.split("\n", 1)[0].removeprefix("# ").split(TITLE_SEPARATOR)
        voices = {
            found.group(1)
            for found in re.finditer(re.escape(SEPARATOR) + r"### ([^\n]*)\n\n", lf)
            if found.group(1) not in title and not _bad_name(found.group(1))
        }
        if not voices:
            raise
        try:
            t = parse_markdown(text, extra_speakers=voices)
        except TranscriptFormatError:
            raise strict from None
        if not t.messages or t.messages[0].speaker not in t.participants:
            raise strict from None
        return t


def _as_lf(text: str) -> str:
    text = text.removeprefix("\ufeff")
    first_line_end = text.find("\n")
    if first_line_end > 0 and text[first_line_end - 1] == "\r":
        return text.replace("\r\n", "\n")
    return text


def _parse_time(value: str, line: int, label: str) -> datetime:
    if not _TIME.fullmatch(value):
        raise TranscriptFormatError(f"line {line}: expected '**{label}:** YYYY-MM-DD HH:MM:SS', got {value!r}")
    try:
        return datetime.strptime(value, TIME_FORMAT)
    except ValueError:
        raise TranscriptFormatError(f"line {line}: {value!r} is not a real date and time") from None


def _parse_blocks(text: str, start: int, speakers: set[str]) -> list[TranscriptMessage]:
    # A block ends at the earliest "separator + heading of a known speaker", or
    # at the separator that ends the file. Searching for the whole boundary
    # (not for `---` lines) is what lets content contain `---`.
    boundary = _boundary(speakers)
    messages: list[TranscriptMessage] = []
    position = start
    while position < len(text):
        if not text.startswith("### ", position):
            _fail(text, position, f"expected '### {{speaker}}' to start message {len(messages) + 1}")
        heading_end = text.find("\n", position)
        if heading_end < 0:
            _fail(text, position, "the file ends inside a speaker heading")
        speaker = text[position + 4 : heading_end]
        if speaker not in speakers:
            _fail(text, position, f"speaker {speaker!r} is not in the title")
        if not text.startswith("\n\n", heading_end):
            _fail(text, heading_end + 1, f"expected an empty line after '### {speaker}'")
        content_start = heading_end + 2
        found = boundary.search(text, content_start)
        if found:
            content_end, position = found.start(), found.start() + len(SEPARATOR)
        elif text.endswith(SEPARATOR) and len(text) - len(SEPARATOR) >= content_start:
            content_end, position = len(text) - len(SEPARATOR), len(text)
        else:
            _fail(text, len(text), "the file must end with '---' and an empty line after the last message")
        messages.append(TranscriptMessage(speaker, text[content_start:content_end]))
    return messages


def _fail(text: str, position: int, problem: str) -> NoReturn:
    # Line numbers are counted only here, so parsing a valid file stays linear.
    raise TranscriptFormatError(f"line {_line_number(text, position)}: {problem}")


def _raise_on_unknown_heading(text: str, speakers: set[str]) -> None:
    for found in re.finditer(re.escape(SEPARATOR) + r"### ([^\n]*)\n\n", text):
        if found.group(1) not in speakers:
            _fail(text, found.start() + len(SEPARATOR), f"speaker {found.group(1)!r} is not in the title")


def _line_number(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


# -- runs --------------------------------------------------------------------


def transcript_from_run(run: Run) -> Transcript:
    ended = run.ended_at
    if ended is None:  # still going (or cut off): as far as it got
        ended = next((m.ended_at for m in reversed(run.messages) if m.ended_at), run.started_at)
    return Transcript(
        participants=list(run.participants),
        started=_wall_clock(run.started_at),
        ended=_wall_clock(ended),
        messages=[TranscriptMessage(m.speaker, m.content) for m in run.messages],
    )


def render_run_markdown(run: Run) -> str:
    return render_markdown(transcript_from_run(run))


def run_from_transcript(t: Transcript, run_id: str, source: str | None = None) -> Run:
    """An imported transcript as a finished run; models and timings are unknown."""
    return Run(
        id=run_id,
        spec={
            "participants": [{"name": name, "model": "imported"} for name in t.participants],
            "opener": t.messages[0].content if t.messages else " ",
        },
        participants=list(t.participants),
        # The header is local wall-clock time; the store keeps aware UTC.
        started_at=t.started.astimezone(UTC),
        ended_at=t.ended.astimezone(UTC),
        status="finished",
        source=source,
        # A speaker not in the title is an outside voice: not generated by any participant.
        messages=[
            Message(index=i, speaker=m.speaker, content=m.content, injected=m.speaker not in t.participants)
            for i, m in enumerate(t.messages, 1)
        ],
    )


def _wall_clock(moment: datetime) -> datetime:
    return moment.astimezone().replace(tzinfo=None, microsecond=0)
