"""UniversalBackrooms conversation logs (BackroomsLogs/*.txt).

The format is what UniversalBackrooms' backrooms.py appends to its log file
(scottviteri/UniversalBackrooms and its forks, `process_and_log_response`): for each message
`"\\n### {actor} ###\\n"` then the response and `"\\n"`; older versions wrote `"\\n{actor}:\\n"`
instead (the actor being `{model's display name} {1-based position}`, e.g. `Claude 1`). At the end
it may append `"\\n{actor} has ended the conversation with ^C^C.\\n"` or `"\\nReached maximum number
of turns (N). Conversation ended.\\n"`; some forks append a reasoning summary after a response
(`"\\n--- Reasoning Summary (logs only) ---\\n"`), which becomes the message's reasoning. The file
is named `{model}_{model}_{template}_{YYYYmmdd_HHMMSS}.txt`: the time (local, when the run
started) is the run's start, the model keys become the messages' models.

The actors speak in turn, always in the same order, so a heading-like line inside a response is
not taken for a heading unless it names the actor whose turn it is.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from ..errors import TranscriptFormatError
from ..records import Message, Run
from ..stopping import StopReason
from . import ImportFormat, ImportOptions
from .common import file_time, foreign_run, head_text, new_ids, read_text

_HEADING = re.compile(r"^### (\S[^\n]*?) ###$", re.M)
_OLD_HEADING = re.compile(r"^(\S[^\n]*? \d+):$", re.M)
_ENDED = re.compile(r"\n(?P<actor>[^\n]+) has ended the conversation with \^C\^C\.\n\Z")
_MAX_TURNS = re.compile(r"\nReached maximum number of turns \((?P<turns>[^)\n]*)\)\. Conversation ended\.\n\Z")
_REASONING = "\n--- Reasoning Summary (logs only) ---\n"
_NAME = re.compile(r"(?P<models>.+)_(?P<date>\d{8})_(?P<time>\d{6})$")


def _heading_style(text: str) -> re.Pattern[str] | None:
    """Which of the two heading styles the log opens with (its first line is empty)."""
    if not text.startswith("\n"):
        return None
    first = text[1:].split("\n", 1)[0]
    for style in (_HEADING, _OLD_HEADING):
        if style.fullmatch(first):
            return style
    return None


def detect(path: Path) -> bool:
    return _heading_style(head_text(path, 1024).replace("\r\n", "\n")) is not None


def _cycles(candidates: list[re.Match[str]]) -> list[list[str]]:
    """The cycles to try: every order of up to 4 of the first 8 names that starts with the first
    speaker, and the first n names in order of appearance for any n up to 16."""
    names = list(dict.fromkeys(m.group(1) for m in candidates))
    cycles = [names[:n] for n in range(1, min(len(names), 16) + 1)]
    stack = [[names[0]]]
    while stack:
        cycle = stack.pop()
        cycles.append(cycle)
        if len(cycle) < 4:
            stack.extend(cycle + [name] for name in names[:8] if name not in cycle)
    return cycles


def _turns(text: str, style: re.Pattern[str]) -> list[tuple[str, int, int]]:
    """(actor, start of the heading line, end of it) for every real heading, in order."""
    # A heading line follows an empty line: the log's first line, or the "\n" ending a response.
    candidates = [m for m in style.finditer(text) if m.start() >= 1 and text[m.start() - 1] == "\n"]
    candidates = [m for m in candidates if m.start() == 1 or text[m.start() - 2] == "\n"]
    if not candidates or candidates[0].start() != 1:
        raise TranscriptFormatError("line 2: expected the first speaker's heading")
    # The actors speak in a fixed cycle. Of the possible cycles (the first name, then other names
    # seen), the one that explains the most headings wins: a heading-like line inside a response
    # breaks the turn order of a cycle that counts it, so it is left in the response. backrooms.py
    # numbers its actors by position ("Claude 1", "GPT4o 2"), so a cycle numbered so wins first.
    best: list[tuple[str, int, int]] = []
    best_key = (False, 0)
    for cycle in _cycles(candidates):
        turns: list[tuple[str, int, int]] = []
        for m in candidates:
            if m.group(1) == cycle[len(turns) % len(cycle)]:
                turns.append((m.group(1), m.start(), m.end()))
        key = (all(name.endswith(f" {k}") for k, name in enumerate(cycle, 1)), len(turns))
        if key > best_key:
            best, best_key = turns, key
    return best


def _parse(text: str) -> tuple[list[str], list[tuple[str, str, str | None]], str | None, str | None]:
    style = _heading_style(text)
    if style is None:
        raise TranscriptFormatError("line 2: expected a heading '### {actor} ###' (or '{actor}:') after an empty line")
    stop_reason = stop_detail = None
    if ended := _ENDED.search(text):
        stop_reason, stop_detail = StopReason.END_MARKER.value, f"{ended['actor']} ended the conversation with ^C^C"
        text = text[: ended.start()]
    elif reached := _MAX_TURNS.search(text):
        stop_reason, stop_detail = StopReason.MAX_MESSAGES.value, f"maximum number of turns ({reached['turns']})"
        text = text[: reached.start()]
    turns = _turns(text, style)
    messages = []
    for k, (actor, _, heading_end) in enumerate(turns):
        end = turns[k + 1][1] - 1 if k + 1 < len(turns) else len(text)  # up to the "\n" before the next heading
        body = text[heading_end + 1 : end]
        if not body.endswith("\n"):
            line = text.count("\n", 0, end) + 1
            raise TranscriptFormatError(f"line {line}: expected the message of {actor!r} to end with a newline")
        body = body[:-1]
        reasoning = None
        if "\n" + _REASONING in body:
            body, reasoning = body.split("\n" + _REASONING, 1)
        messages.append((actor, body, reasoning))
    order = list(dict.fromkeys(actor for actor, _, _ in turns))
    return order, messages, stop_reason, stop_detail


def _from_name(path: Path, count: int) -> tuple[datetime | None, list[str]]:
    """The start time and the model keys in the file's name, when it has UniversalBackrooms' pattern."""
    found = _NAME.match(path.stem)
    if not found:
        return None, []
    try:
        started = datetime.strptime(found["date"] + found["time"], "%Y%m%d%H%M%S").astimezone().astimezone(UTC)
    except ValueError:
        return None, []
    parts = found["models"].split("_")
    return started, parts[:count] if len(parts) > count else []


def read(path: Path, options: ImportOptions) -> list[Run]:
    text = read_text(path).replace("\r\n", "\n")
    actors, parsed, stop_reason, stop_detail = _parse(text)
    started, models = _from_name(path, len(actors))
    started = started or file_time(path)
    model_of = dict(zip(actors, models, strict=False))
    messages = [
        Message(index=i, speaker=actor, content=body, model=model_of.get(actor), reasoning=reasoning)
        for i, (actor, body, reasoning) in enumerate(parsed, 1)
    ]
    return [
        foreign_run(
            new_ids(1)[0],
            path,
            actors,
            messages,
            started_at=started,
            stop_reason=stop_reason,
            stop_detail=stop_detail,
        )
    ]


FORMAT = ImportFormat(
    name="backrooms",
    description="a UniversalBackrooms log (BackroomsLogs/*.txt: '### Claude 1 ###' headings)",
    suffixes=(".txt",),
    detect=detect,
    read=read,
)
