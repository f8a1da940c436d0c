"""Reading simonw/llm's log database (logs.db), read-only, for `duologue import`.

The schema is llm's own (llm/migrations.py in simonw/llm): `conversations (id, name, model)` and
`responses (id, model, prompt, system, response, conversation_id, duration_ms, datetime_utc, …)`,
later joined by `input_tokens`, `output_tokens` (m013_usage) and `resolved_model` (m019). Columns a
database does not have yet read as None. The SQL lives here because the store owns all of it.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from ..errors import TranscriptFormatError

SQLITE_MAGIC = b"SQLite format 3\x00"
_REQUIRED = {"id", "prompt", "response", "conversation_id"}
_OPTIONAL = ("model", "system", "datetime_utc", "duration_ms", "input_tokens", "output_tokens", "resolved_model")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}


def is_llm_logs(path: Path) -> bool:
    """Whether the file is an SQLite database with llm's conversations and responses tables."""
    with path.open("rb") as f:
        if f.read(16) != SQLITE_MAGIC:
            return False
    try:
        with closing(_connect(path)) as conn:
            return _REQUIRED <= _columns(conn, "responses") and {"id", "name"} <= _columns(conn, "conversations")
    except sqlite3.Error:
        return False


def llm_conversations(path: Path, conversation: str | None = None) -> list[dict[str, Any]]:
    """Each conversation (or the one asked for) as {id, name, model, responses: [row dicts in order]}.

    Conversations come in the order of their first response; responses in the order they were
    logged (datetime_utc, then insertion).
    """
    try:
        with closing(_connect(path)) as conn:
            have = _columns(conn, "responses")
            if not _REQUIRED <= have:
                raise TranscriptFormatError(f"its responses table lacks {', '.join(sorted(_REQUIRED - have))}")
            picked = ", ".join([*sorted(_REQUIRED), *(c if c in have else f"NULL AS {c}" for c in _OPTIONAL)])
            where, args = ("WHERE conversation_id = ?", (conversation,)) if conversation is not None else ("", ())
            rows = conn.execute(
                f"SELECT {picked} FROM responses {where} ORDER BY datetime_utc, rowid",  # noqa: S608 (fixed names)
                args,
            ).fetchall()
            names = {
                row["id"]: (row["name"], row["model"] if "model" in row.keys() else None)
                for row in conn.execute("SELECT * FROM conversations")
            }
    except sqlite3.Error as err:
        raise TranscriptFormatError(f"cannot read it as an llm log database ({err})") from None
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        cid = row["conversation_id"]
        if cid not in found:
            name, model = names.get(cid, (None, None))
            found[cid] = {"id": cid, "name": name, "model": model, "responses": []}
        found[cid]["responses"].append(dict(row))
    return list(found.values())
