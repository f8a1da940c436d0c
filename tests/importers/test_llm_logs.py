"""Importing simonw/llm's logs.db.

Two ways to make the database: by hand with sqlite3, in the legacy layout llm/migrations.py creates
(m010_create_new_log_tables: conversations and responses; m013_usage: input_tokens, output_tokens;
m019_resolved_model), which older llm versions wrote and newer ones still read; and with llm itself
(when installed: it comes with the `local` extra), whose log_to_db writes its current layout.
"""

from __future__ import annotations

import sqlite3

import pytest

from duologue.errors import TranscriptFormatError
from duologue.importers import ImportOptions, detect_format, read_runs
from duologue.store import Store
from helpers import run_cli

# The legacy tables as sqlite-utils creates them for llm's migrations m010, m013 and m019.
LEGACY_SCHEMA = """
CREATE TABLE [conversations] ([id] TEXT PRIMARY KEY, [name] TEXT, [model] TEXT);
CREATE TABLE [responses] (
   [id] TEXT PRIMARY KEY, [model] TEXT, [prompt] TEXT, [system] TEXT, [prompt_json] TEXT,
   [options_json] TEXT, [response] TEXT, [response_json] TEXT,
   [conversation_id] TEXT REFERENCES [conversations]([id]), [duration_ms] INTEGER, [datetime_utc] TEXT,
   [input_tokens] INTEGER, [output_tokens] INTEGER, [token_details] TEXT, [resolved_model] TEXT
);
"""


def legacy_db(path):
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_SCHEMA)
    conn.executemany(
        "INSERT INTO conversations VALUES (?, ?, ?)",
        [("01j0aaaa", "Maps of talk", "gpt-4o-mini"), ("01j0bbbb", "Haiku", "claude-3.5-haiku")],
    )
    rows = [
        # id, model, prompt, system, response, conversation, duration_ms, datetime_utc, in, out, resolved
        ("01j0r1", "gpt-4o-mini", "What is a map?", "Be brief.", "A drawing of where.", "01j0aaaa", 1500,
         "2025-03-01T10:00:00.000001", 12, 5, "gpt-4o-mini-2024-07-18"),
        ("01j0r3", "claude-3.5-haiku", "A haiku, please", None, "old pond\nfrog", "01j0bbbb", 800,
         "2025-03-01T10:00:30+00:00", None, None, None),
        ("01j0r2", "gpt-4o-mini", "Of a talk?", "Be brief.", "Its loops.", "01j0aaaa", 900,
         "2025-03-01T10:01:00.000001", 20, 3, None),
    ]  # fmt: skip
    conn.executemany(
        "INSERT INTO responses (id, model, prompt, system, response, conversation_id, duration_ms, datetime_utc,"
        " input_tokens, output_tokens, resolved_model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    conn.close()
    return path


def test_legacy_tables_every_conversation(tmp_path):
    db = legacy_db(tmp_path / "logs.db")
    assert detect_format(db).name == "llm"
    first, second = read_runs(db)
    assert first.participants == ["user", "assistant"]
    assert [(m.speaker, m.content) for m in first.messages] == [
        ("user", "What is a map?"),
        ("assistant", "A drawing of where."),
        ("user", "Of a talk?"),
        ("assistant", "Its loops."),
    ]
    reply = first.messages[1]
    assert reply.model == "gpt-4o-mini-2024-07-18"  # the resolved model wins
    assert (reply.prompt_tokens, reply.completion_tokens, reply.latency) == (12, 5, 1.5)
    assert reply.started_at.isoformat() == "2025-03-01T10:00:00.000001+00:00"  # naive times are UTC
    assert (reply.ended_at - reply.started_at).total_seconds() == 1.5
    assert first.started_at == reply.started_at and first.source == f"{db}#01j0aaaa"
    assert {p["name"]: p.get("system") for p in first.spec["participants"]} == {"user": None, "assistant": "Be brief."}
    assert [(m.speaker, m.content) for m in second.messages] == [
        ("user", "A haiku, please"),
        ("assistant", "old pond\nfrog"),
    ]
    assert second.messages[1].model == "claude-3.5-haiku"


def test_one_conversation_by_id_and_names(tmp_path):
    db = legacy_db(tmp_path / "logs.db")
    (run,) = read_runs(db, options=ImportOptions(conversation="01j0bbbb", names=("me", "haiku")))
    assert [m.speaker for m in run.messages] == ["me", "haiku"]
    with pytest.raises(TranscriptFormatError, match="not a valid llm file: no conversation 'nope'"):
        read_runs(db, options=ImportOptions(conversation="nope"))


def test_cli_imports_every_conversation_in_one_go(tmp_path):
    legacy_db(tmp_path / "logs.db")
    out = run_cli("import", "logs.db", cwd=tmp_path, check=True).stdout.splitlines()
    assert len(out) == 2 and all(" as run " in line for line in out)
    with Store(tmp_path / "runs" / "duologue.db") as store:
        sources = {store.get_run(r.id).source for r in store.list_runs()}
    assert sources == {"logs.db#01j0aaaa", "logs.db#01j0bbbb"}
    proc = run_cli("import", "logs.db", "--conversation", "nope", "--db", "other.db", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "no conversation 'nope'" in proc.stderr and not (tmp_path / "other.db").exists()


def test_a_database_that_is_not_llms(tmp_path):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.commit()
    conn.close()
    assert detect_format(other).name == "llm"  # by its suffix only: no format recognises it
    with pytest.raises(TranscriptFormatError, match="not a valid llm file: it has neither llm's threads"):
        read_runs(other)


def test_logs_written_by_llm_itself(tmp_path):
    llm = pytest.importorskip("llm")
    sqlite_utils = pytest.importorskip("sqlite_utils")
    from llm.migrations import migrate

    class Echo(llm.Model):
        model_id = "echo-test"
        can_stream = False

        def execute(self, prompt, stream, response, conversation):
            yield f"you said: {prompt.prompt}"

    db = sqlite_utils.Database(tmp_path / "logs.db")
    migrate(db)
    model = Echo()
    chat = model.conversation()
    for text in ("hello", "and again\n\n---\n\nwith a rule"):
        response = chat.prompt(text, system="be an echo")
        response.text()
        response.log_to_db(db)
    other = model.conversation()
    response = other.prompt("alone")
    response.text()
    response.log_to_db(db)
    db.close()

    runs = read_runs(tmp_path / "logs.db")
    assert len(runs) == 2
    first = next(r for r in runs if len(r.messages) == 4)
    assert [(m.speaker, m.content) for m in first.messages] == [
        ("user", "hello"),
        ("assistant", "you said: hello"),
        ("user", "and again\n\n---\n\nwith a rule"),
        ("assistant", "you said: and again\n\n---\n\nwith a rule"),
    ]
    assert all(m.model == "echo-test" for m in first.messages if m.speaker == "assistant")
    assert all(m.started_at is not None for m in first.messages)
    assert {p["name"]: p.get("system") for p in first.spec["participants"]}["assistant"] == "be an echo"
    (alone,) = (r for r in runs if r is not first)
    assert [m.content for m in alone.messages] == ["alone", "you said: alone"]
    (picked,) = read_runs(tmp_path / "logs.db", options=ImportOptions(conversation=chat.id))
    assert [m.content for m in picked.messages] == [m.content for m in first.messages]
