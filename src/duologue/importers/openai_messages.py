"""OpenAI-style `messages` JSON: one conversation as one side saw it.

The file is the `messages` array of a Chat Completions request (a list of `{"role", "content"}`
objects), or an object holding it under `"messages"` (a request body, or a saved chat with other
keys besides). The side that saw it is `assistant`; `user` is the other participant, and the
`system` (or `developer`) messages are the assistant's system prompt. `content` may be a string or a
list of parts (`{"type": "text", "text": …}`; other parts, such as images, are left out); `name`
on a message is ignored. Roles other than these (`tool`, `function`) are an error, as the
conversation would not read the same without them. `--names A,B` renames user and assistant, in
the order they first speak. The file records no times: the run's start is its modification time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import TranscriptFormatError
from ..records import Message, Run
from ..transcripts.jsonfmt import json_error
from . import ImportFormat, ImportOptions
from .common import file_time, foreign_run, head_text, new_ids, read_text

_SIDES = ("user", "assistant")
_SYSTEM = ("system", "developer")


def detect(path: Path) -> bool:
    start = head_text(path, 512).lstrip()
    if not start.startswith(("[", "{")) or re.match(r'\{\s*"format"', start):  # a duologue run export
        return False
    if path.stat().st_size <= 5_000_000:  # small enough to look at whole
        try:
            data = json.loads(read_text(path))
        except ValueError:
            return False
        if isinstance(data, dict) and "format" not in data:
            data = data.get("messages")
        return (
            isinstance(data, list)
            and bool(data)
            and all(isinstance(m, dict) and m.get("role") in (*_SIDES, *_SYSTEM, "tool", "function") for m in data)
        )
    # A large file: messages first, or a list whose first object has a role.
    return start.startswith("[") and '"role"' in start or re.match(r'\{\s*"messages"', start) is not None


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        texts = []
        for k, part in enumerate(value):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
                if not isinstance(part.get("text"), str):
                    raise TranscriptFormatError(f"{where}.content[{k}]: a text part without a string 'text'")
                texts.append(part["text"])
        return "".join(texts)
    raise TranscriptFormatError(f"{where}.content: expected a string or a list of parts, got {type(value).__name__}")


def read(path: Path, options: ImportOptions) -> list[Run]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise TranscriptFormatError(f"line {e.lineno}: {json_error(e)}") from None
    where = "messages"
    if isinstance(data, dict):
        if "messages" not in data:
            raise TranscriptFormatError("an object without 'messages'")
        data = data["messages"]
    if not isinstance(data, list):
        raise TranscriptFormatError(f"{where}: expected a list of messages, got {type(data).__name__}")
    systems: list[str] = []
    turns: list[tuple[str, str]] = []
    for i, m in enumerate(data):
        at = f"{where}[{i}]"
        if not isinstance(m, dict):
            raise TranscriptFormatError(f"{at}: expected an object with 'role' and 'content'")
        role = m.get("role")
        if role not in (*_SIDES, *_SYSTEM):
            raise TranscriptFormatError(
                f"{at}: role {role!r} is not one of user, assistant, system, developer"
                + (" (tool calls cannot be imported)" if role in ("tool", "function") else "")
            )
        text = _content(m.get("content"), at)
        if role in _SYSTEM:
            if turns:
                raise TranscriptFormatError(f"{at}: a {role} message after the conversation started")
            systems.append(text)
        else:
            turns.append((role, text))
    if not turns:
        raise TranscriptFormatError("no user or assistant message")
    first = turns[0][0]
    speakers = [first, "assistant" if first == "user" else "user"]
    messages = [Message(index=k, speaker=role, content=text) for k, (role, text) in enumerate(turns, 1)]
    started = file_time(path)
    return [
        foreign_run(
            new_ids(1)[0],
            path,
            speakers,
            messages,
            started_at=started,
            systems={"assistant": "\n\n".join(systems)} if systems else None,
        )
    ]


FORMAT = ImportFormat(
    name="openai",
    description='OpenAI-style messages JSON ([{role, content}, …] or {"messages": […]}), one side\'s view',
    suffixes=(".json",),
    detect=detect,
    read=read,
)
