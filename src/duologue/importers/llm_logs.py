"""simonw/llm's log database (logs.db): each logged conversation as a run.

`llm` keeps every prompt and response in SQLite (store/llm_logs.py reads both its layouts: the
message store of llm 0.3x and the conversations/responses tables older versions wrote). A
conversation's user messages are spoken by `user`, its model's replies by `assistant` (with the
model, time, duration and token counts of the call that wrote them, and any reasoning); its system
messages are the assistant's system prompt; tool calls and results are left out. `--conversation
ID` imports one conversation; by default every conversation of the file is imported, each as a run
whose source is `PATH#ID`. `--names A,B` renames the two in the order they first speak.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from ..errors import TranscriptFormatError
from ..records import Message, Run
from ..store.llm_logs import is_llm_logs, llm_conversations
from . import ImportFormat, ImportOptions
from .common import file_time, foreign_run, new_ids, utc_time


def detect(path: Path) -> bool:
    return is_llm_logs(path)


def _message(index: int, m: dict[str, Any], where: str) -> Message:
    at = utc_time(m["datetime_utc"], where) if m.get("datetime_utc") else None
    duration = m["duration_ms"] / 1000 if isinstance(m.get("duration_ms"), (int, float)) else None
    if m["role"] == "user":
        return Message(index=index, speaker="user", content=m["text"], started_at=at)
    return Message(
        index=index,
        speaker="assistant",
        content=m["text"] or "",
        reasoning=m.get("reasoning") or None,
        model=m.get("resolved_model") or m.get("model"),
        started_at=at,
        ended_at=at + timedelta(seconds=duration) if at and duration is not None else None,
        latency=duration,
        prompt_tokens=m.get("input_tokens"),
        completion_tokens=m.get("output_tokens"),
    )


def _run(run_id: str, path: Path, conversation: dict[str, Any]) -> Run:
    systems = [m["text"] for m in conversation["messages"] if m["role"] == "system" and m["text"]]
    said = [m for m in conversation["messages"] if m["role"] in ("user", "assistant")]
    messages = [_message(k, m, f"conversation {conversation['id']}") for k, m in enumerate(said, 1)]
    # A prompt was sent when the call that answered it started.
    for m, following in zip(messages, messages[1:], strict=False):
        if m.started_at is None and m.speaker == "user" and following.speaker == "assistant":
            m.started_at = following.started_at
    first = messages[0].speaker if messages else "user"
    speakers = [first, "assistant" if first == "user" else "user"]
    started = next((m.started_at for m in messages if m.started_at), None) or file_time(path)
    if not messages:
        raise TranscriptFormatError(f"conversation {conversation['id']} has no user or assistant message")
    run = foreign_run(
        run_id,
        path,
        speakers,
        messages,
        started_at=started,
        systems={"assistant": "\n\n".join(systems)} if systems else None,
    )
    run.source = f"{path}#{conversation['id']}"
    return run


def read(path: Path, options: ImportOptions) -> list[Run]:
    conversations = llm_conversations(path, options.conversation)
    if options.conversation is not None and not conversations:
        raise TranscriptFormatError(f"no conversation {options.conversation!r} in it")
    ids = new_ids(len(conversations))
    return [_run(run_id, path, c) for run_id, c in zip(ids, conversations, strict=True)]


FORMAT = ImportFormat(
    name="llm",
    description="simonw/llm's logs.db: every conversation (or --conversation ID) as a run",
    suffixes=(".db", ".sqlite", ".sqlite3"),
    detect=detect,
    read=read,
    conversations=True,
)
