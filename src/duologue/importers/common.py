"""What the importers share: sniffing a file's start, and a foreign conversation as a duologue run."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import SpecError, TranscriptFormatError
from ..records import IMPORTED_MODEL, Event, Message, Run
from ..spec import spec_from_dict


def head(path: Path, size: int = 4096) -> bytes:
    """The file's first bytes (detection looks at no more)."""
    with path.open("rb") as f:
        return f.read(size)


def head_text(path: Path, size: int = 4096) -> str:
    """The file's start as text, a leading BOM dropped; a character cut at the end is dropped too."""
    return head(path, size).decode("utf-8", errors="ignore").removeprefix("\ufeff")


def read_text(path: Path) -> str:
    """The whole file as UTF-8 text (UnicodeDecodeError for anything else), a leading BOM dropped."""
    return path.read_text(encoding="utf-8").removeprefix("\ufeff")


def read_text_replacing(path: Path) -> tuple[str, str | None]:
    """The whole file as UTF-8 text, a leading BOM dropped, and what was done to it: bytes that are not
    UTF-8 are each replaced by U+FFFD, and the note says how many and from which line (None: none)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8").removeprefix("\ufeff"), None
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    replaced = text.count("\ufffd") - data.count("\ufffd".encode())
    what = "byte sequence that is" if replaced == 1 else "byte sequences that are"
    return text, f"{replaced} {what} not UTF-8 replaced by U+FFFD (the first on line {line})"


def file_time(path: Path) -> datetime:
    """When the file was last written, for formats that record no time at all."""
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def new_ids(count: int) -> list[str]:
    """`count` distinct new run ids."""
    from ..engine import new_run_id

    ids: list[str] = []
    while len(ids) < count:
        candidate = new_run_id()
        if candidate not in ids:
            ids.append(candidate)
    return ids


def utc_time(value: str, where: str) -> datetime:
    """An ISO-8601 time; one without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TranscriptFormatError(f"{where}: {value!r} is not an ISO-8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def foreign_run(
    run_id: str,
    path: Path,
    participants: Sequence[str],
    messages: Sequence[Message],
    *,
    started_at: datetime,
    ended_at: datetime | None = None,
    systems: dict[str, str] | None = None,
    histories: dict[str, list[dict[str, str]]] | None = None,
    stop_reason: str | None = None,
    stop_detail: str | None = None,
    metadata: dict[str, Any] | None = None,
    events: Sequence[Event] = (),
) -> Run:
    """A conversation another tool recorded, as a finished run of `imported` participants.

    The spec holds what the file says about each side (its system prompt, its private preamble),
    the opener (message 1) and what else the file says about the run (`metadata`); models go on the
    messages (`Message.model`), since duologue cannot run them as they are named there. `events`: what
    the file holds besides messages (stored with the run). The spec is validated, so a name duologue cannot hold is one
    line here instead of a broken run later.
    """
    if len(participants) < 2:
        raise TranscriptFormatError(f"a conversation needs two speakers; found {len(participants)}")
    systems, histories = systems or {}, histories or {}
    spec = {
        "participants": [
            {
                "name": name,
                "model": IMPORTED_MODEL,
                **({"system": systems[name]} if name in systems else {}),
                **({"history": histories[name]} if histories.get(name) else {}),
            }
            for name in participants
        ],
        "opener": messages[0].content if messages else " ",
        **({"metadata": metadata} if metadata else {}),
    }
    try:
        spec = spec_from_dict(spec).model_dump(mode="json", exclude_defaults=True)
    except SpecError as err:
        raise TranscriptFormatError(err.problems[0]) from None
    if ended_at is None:
        times = [t for m in messages if (t := m.ended_at or m.started_at) is not None]
        ended_at = max(times, default=started_at)
    return Run(
        id=run_id,
        spec=spec,
        participants=list(participants),
        started_at=started_at,
        ended_at=ended_at,
        status="finished",
        stop_reason=stop_reason,
        stop_detail=stop_detail,
        source=str(path),
        messages=list(messages),
        events=list(events),
    )


def renamed(run: Run, names: Sequence[str]) -> Run:
    """The run with its participants renamed in speaking order (outside voices keep their names)."""
    if len(names) != len(run.participants):
        raise TranscriptFormatError(
            f"--names gives {len(names)} names but the conversation has {len(run.participants)} speakers "
            f"({', '.join(run.participants)})"
        )
    mapping = dict(zip(run.participants, names, strict=True))
    spec = dict(run.spec)
    spec["participants"] = [{**p, "name": mapping.get(p["name"], p["name"])} for p in run.spec["participants"]]
    try:
        spec = spec_from_dict(spec).model_dump(mode="json", exclude_defaults=True)
    except SpecError as err:
        raise TranscriptFormatError(f"--names: {err.problems[0]}") from None
    return dataclasses.replace(
        run,
        spec=spec,
        participants=[mapping[p] for p in run.participants],
        messages=[dataclasses.replace(m, speaker=mapping.get(m.speaker, m.speaker)) for m in run.messages],
    )
