"""simonw/llm's log database (logs.db): each logged conversation as a run.

`llm` keeps every prompt and response in SQLite (see store/llm_logs.py for the schema). A
conversation is its responses in order; each response row gives two messages: the prompt (by
`user`) and the response (by `assistant`, with the model, its time, duration and token counts).
The first system prompt is the assistant's (`system` in the spec). `--conversation ID` imports
one conversation; by default every conversation of the file is imported, each as a run whose
source is `PATH#ID`. `--names A,B` renames user and assistant.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ..errors import TranscriptFormatError
from ..records import Message, Run
from ..store.llm_logs import is_llm_logs, llm_conversations
from . import ImportFormat, ImportOptions
from .common import file_time, foreign_run, new_ids, utc_time


def detect(path: Path) -> bool:
    return is_llm_logs(path)


def _run(run_id: str, path: Path, conversation: dict) -> Run:
    messages: list[Message] = []
    system = None
    for row in conversation["responses"]:
        where = f"response {row['id']}"
        at = utc_time(row["datetime_utc"], where) if row["datetime_utc"] else None
        duration = row["duration_ms"] / 1000 if isinstance(row["duration_ms"], (int, float)) else None
        if system is None and row["system"]:
            system = row["system"]
        if row["prompt"]:
            messages.append(Message(index=len(messages) + 1, speaker="user", content=row["prompt"], started_at=at))
        if row["response"] is None:
            raise TranscriptFormatError(f"{where} of conversation {conversation['id']} has no response text")
        messages.append(
            Message(
                index=len(messages) + 1,
                speaker="assistant",
                content=row["response"],
                model=row["resolved_model"] or row["model"] or conversation["model"],
                started_at=at,
                ended_at=at + timedelta(seconds=duration) if at and duration is not None else None,
                latency=duration,
                prompt_tokens=row["input_tokens"],
                completion_tokens=row["output_tokens"],
            )
        )
    first = messages[0].speaker if messages else "user"
    speakers = [first, "assistant" if first == "user" else "user"]
    started = next((m.started_at for m in messages if m.started_at), None) or file_time(path)
    run = foreign_run(
        run_id, path, speakers, messages, started_at=started, systems={"assistant": system} if system else None
    )
    run.source = f"{path}#{conversation['id']}"
    return run


def read(path: Path, options: ImportOptions) -> list[Run]:
    conversations = llm_conversations(path, options.conversation)
    if options.conversation is not None and not conversations:
        raise TranscriptFormatError(f"no conversation {options.conversation!r} (with responses) in it")
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
