"""Reading simonw/llm's log database (logs.db), read-only, for `duologue import`.

The schema is llm's own (llm/migrations.py in simonw/llm). Two layouts, both read:

- **the message store** (llm 0.3x, migration m023_message_store): `threads (id, name,
  tip_message_hash)`, `messages (hash, parent_hash, role)` chained from a thread's tip back to the
  first message, `parts (message_hash, position, type, text, payload)` (text whose content borrows
  fragments keeps `text_ref` pieces in the JSON payload, `{"literal": …}` or `{"fragment": id}`),
  and `turns (thread_id, parent_message_hash, tip_message_hash, model, resolved_model,
  input_tokens, output_tokens, duration_ms, datetime_utc)`, one per model call;
- **the legacy tables** older versions wrote (and newer ones still read): `conversations (id, name,
  model)` and `responses (id, model, prompt, system, response, conversation_id, duration_ms,
  datetime_utc, …)`, later with `input_tokens`, `output_tokens` (m013), `resolved_model` (m019),
  `reasoning` (m022). Columns a database does not have read as None.

Both come out the same: conversations as {id, messages: [{role, text, reasoning, model,
datetime_utc, duration_ms, input_tokens, output_tokens}]}. A thread and a legacy conversation with
the same id (one continued after the upgrade) are the thread, which holds the whole history. The
SQL lives here because the store owns all of it.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from ..errors import TranscriptFormatError

SQLITE_MAGIC = b"SQLite format 3\x00"
_REQUIRED = {"id", "prompt", "response", "conversation_id"}
_OPTIONAL = (
    "model",
    "system",
    "datetime_utc",
    "duration_ms",
    "input_tokens",
    "output_tokens",
    "resolved_model",
    "reasoning",
)
_CALL = ("model", "resolved_model", "datetime_utc", "duration_ms", "input_tokens", "output_tokens")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}


def _layouts(conn: sqlite3.Connection) -> tuple[bool, bool]:
    """(has the message store, has the legacy tables)."""
    store = {"id", "tip_message_hash"} <= _columns(conn, "threads") and {"hash", "parent_hash", "role"} <= _columns(
        conn, "messages"
    )
    legacy = _REQUIRED <= _columns(conn, "responses")
    return store, legacy


def is_llm_logs(path: Path) -> bool:
    """Whether the file is an SQLite database with llm's log tables."""
    with path.open("rb") as f:
        if f.read(16) != SQLITE_MAGIC:
            return False
    try:
        with closing(_connect(path)) as conn:
            return any(_layouts(conn))
    except sqlite3.Error:
        return False


def llm_conversations(path: Path, conversation: str | None = None) -> list[dict[str, Any]]:
    """Each conversation (or the one asked for), oldest first, its messages in order."""
    try:
        with closing(_connect(path)) as conn:
            store, legacy = _layouts(conn)
            if not (store or legacy):
                raise TranscriptFormatError("it has neither llm's threads and messages nor its responses table")
            threads = _threads(conn, conversation) if store else []
            known = {t["id"] for t in threads}
            older = [c for c in _legacy(conn, conversation) if c["id"] not in known] if legacy else []
    except sqlite3.Error as err:
        raise TranscriptFormatError(f"cannot read it as an llm log database ({err})") from None
    return older + threads


# -- the message store ----------------------------------------------------------------------------


def _threads(conn: sqlite3.Connection, conversation: str | None) -> list[dict[str, Any]]:
    where, args = ("WHERE id = ?", (conversation,)) if conversation is not None else ("", ())
    order = "datetime_utc, rowid" if "datetime_utc" in _columns(conn, "threads") else "rowid"
    found = []
    for thread in conn.execute(f"SELECT * FROM threads {where} ORDER BY {order}", args).fetchall():
        chain = _chain(conn, thread["tip_message_hash"])
        if not chain:
            continue
        calls = _turns(conn, thread["id"], chain)
        messages = []
        for row in chain:
            text, reasoning = _parts(conn, row["hash"])
            messages.append({"role": row["role"], "text": text, "reasoning": reasoning, **calls.get(row["hash"], {})})
        found.append({"id": thread["id"], "messages": messages})
    return found


def _chain(conn: sqlite3.Connection, tip: str | None) -> list[sqlite3.Row]:
    """The messages from the first to `tip`, following parent_hash back."""
    rows: list[sqlite3.Row] = []
    seen: set[str] = set()
    while tip is not None and tip not in seen:
        seen.add(tip)
        row = conn.execute("SELECT hash, parent_hash, role FROM messages WHERE hash = ?", (tip,)).fetchone()
        if row is None:
            raise TranscriptFormatError(f"message {tip} of a thread is missing from its messages table")
        rows.append(row)
        tip = row["parent_hash"]
    return rows[::-1]


def _parts(conn: sqlite3.Connection, message_hash: str) -> tuple[str, str | None]:
    """A message's text and its reasoning (tool calls, results and attachments are left out)."""
    texts: dict[str, list[str]] = {"text": [], "reasoning": []}
    for part in conn.execute(
        "SELECT type, text, payload FROM parts WHERE message_hash = ? ORDER BY position", (message_hash,)
    ):
        if part["type"] not in texts:
            continue
        if part["text"] is not None:
            texts[part["type"]].append(part["text"])
            continue
        payload = json.loads(part["payload"]) if part["payload"] else {}
        if isinstance(payload.get("text"), str):
            texts[part["type"]].append(payload["text"])
        for piece in payload.get("text_ref") or []:
            if "literal" in piece:
                texts[part["type"]].append(piece["literal"])
            elif "fragment" in piece:
                row = conn.execute("SELECT content FROM fragments WHERE id = ?", (piece["fragment"],)).fetchone()
                texts[part["type"]].append(row["content"] if row else "")
    return "".join(texts["text"]), "".join(texts["reasoning"]) or None


def _turns(conn: sqlite3.Connection, thread_id: str, chain: list[sqlite3.Row]) -> dict[str, dict[str, Any]]:
    """For each message a model call wrote (the chain between a turn's parent and its tip): the call."""
    have = _columns(conn, "turns")
    picked = ", ".join(c if c in have else f"NULL AS {c}" for c in ("parent_message_hash", "tip_message_hash", *_CALL))
    position = {row["hash"]: k for k, row in enumerate(chain)}
    calls: dict[str, dict[str, Any]] = {}
    for turn in conn.execute(f"SELECT {picked} FROM turns WHERE thread_id = ? ORDER BY rowid", (thread_id,)):
        end = position.get(turn["tip_message_hash"])
        if end is None:
            continue  # a turn of another branch (the thread was forked away from it)
        start = position.get(turn["parent_message_hash"], -1) + 1
        call = {c: turn[c] for c in _CALL}
        for row in chain[start : end + 1]:
            calls[row["hash"]] = call
    return calls


# -- the legacy tables ----------------------------------------------------------------------------


def _legacy(conn: sqlite3.Connection, conversation: str | None) -> list[dict[str, Any]]:
    have = _columns(conn, "responses")
    picked = ", ".join([*sorted(_REQUIRED), *(c if c in have else f"NULL AS {c}" for c in _OPTIONAL)])
    where, args = ("WHERE conversation_id = ?", (conversation,)) if conversation is not None else ("", ())
    rows = conn.execute(f"SELECT {picked} FROM responses {where} ORDER BY datetime_utc, rowid", args).fetchall()
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        cid = row["conversation_id"]
        if cid not in found:
            found[cid] = {"id": cid, "messages": []}
        messages = found[cid]["messages"]
        if row["system"] and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "text": row["system"]})
        if row["prompt"]:
            messages.append({"role": "user", "text": row["prompt"], "datetime_utc": row["datetime_utc"]})
        messages.append(
            {
                "role": "assistant",
                "text": row["response"],
                "reasoning": row["reasoning"],
                **{c: row[c] for c in _CALL},
            }
        )
    return list(found.values())
