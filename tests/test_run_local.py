"""Whole conversations on the embedded model, driven through the CLI and the Python API."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from duologue.api import arun_conversation
from duologue.backends.embedded.common import LlamaSettings
from duologue.backends.embedded.simple import LlamaCppBackend
from duologue.spec import ConversationSpec, Participant
from duologue.store import Store
from duologue.transcripts.markdown import parse_markdown, render_markdown
from helpers import run_cli, start_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# A loop (SmolLM2 falls into them often, and where depends on where a run was cut) must not end
# these runs early: they test streaming, storing and resuming, not the loop rule.
SMALL = ["--max-tokens", "32", "--context-length", "1024", "--on-loop", "continue"]


def db_messages(db: Path, run_id: str) -> list[tuple[int, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT idx, speaker FROM messages WHERE run_id=? ORDER BY idx", (run_id,)).fetchall()
    finally:
        conn.close()


def only_run_id(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        (rid,) = conn.execute("SELECT id FROM runs").fetchone()
        return rid
    finally:
        conn.close()


def test_default_run_streams_and_writes_transcript_and_store(tmp_path):
    proc = run_cli("run", "--max-messages", "6", *SMALL, cwd=tmp_path, check=True)
    assert "### smollm2-a" in proc.stdout and "### smollm2-b" in proc.stdout
    assert "stop: max_messages" in proc.stdout
    db = tmp_path / "runs" / "duologue.db"
    rid = only_run_id(db)
    assert f"transcript: runs/{rid}.md" in proc.stdout
    text = (tmp_path / "runs" / f"{rid}.md").read_text(encoding="utf-8")
    t = parse_markdown(text)
    assert t.participants == ["smollm2-a", "smollm2-b"]
    assert [m.speaker for m in t.messages] == ["smollm2-a", "smollm2-b"] * 3
    assert t.messages[0].content == " "  # the default opener
    assert text.startswith("# smollm2-a ↔ smollm2-b\n\n**Started:** ")
    assert "\n**Messages:** 6\n\n---\n\n### smollm2-a\n\n \n\n---\n\n### smollm2-b\n\n" in text
    assert text.endswith("\n\n---\n\n") and render_markdown(t) == text

    with Store(db) as store:
        run = store.get_run(rid)
        assert run.status == "finished" and run.stop_reason == "max_messages"
        assert run.duologue_version and run.spec["participants"][0]["seed"] is not None
        generated = run.messages[1:]
        for m in generated:
            assert m.model == "local/smollm2"
            assert m.prompt_tokens > 0 and m.completion_tokens > 0
            assert m.started_at <= m.ended_at and m.latency > 0 and m.finish_reason in ("stop", "length")
        # Each participant's own context: from its second turn on, its earlier prompt is reused.
        for m in generated[2:]:
            assert m.cached_tokens > 0, m
    # The export is the transcript on disk.
    assert run_cli("export", rid, cwd=tmp_path, check=True).stdout == text


def test_same_seed_same_conversation(tmp_path):
    a = run_cli("run", "-q", "--max-messages", "5", "--seed", "42", *SMALL, "--db", "a/d.db", cwd=tmp_path, check=True)
    b = run_cli("run", "-q", "--max-messages", "5", "--seed", "42", *SMALL, "--db", "b/d.db", cwd=tmp_path, check=True)
    texts = []
    for folder in ("a", "b"):
        rid = only_run_id(tmp_path / folder / "d.db")
        texts.append([m.content for m in parse_markdown((tmp_path / folder / f"{rid}.md").read_text()).messages])
    assert texts[0] == texts[1]
    assert a.returncode == b.returncode == 0


class RecordingBackend(LlamaCppBackend):
    """The real embedded backend, keeping what each call was sent."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent = []

    async def complete(self, messages, sampling, on_event=None):
        self.sent.append(list(messages))
        return await super().complete(messages, sampling, on_event)


def test_each_participant_sees_its_own_side(tmp_path):
    spec = ConversationSpec(
        participants=[
            Participant(name="alice", system="You are Alice.", max_tokens=24, seed=1, context_length=1024),
            Participant(name="bob", system="You are Bob.", max_tokens=24, seed=2, context_length=1024),
        ],
        opener="Hello Bob!",
        max_messages=5,
    )
    from duologue.engine import Conversation

    backends = {p.name: RecordingBackend(p.model, LlamaSettings(1024, None, p.seed)) for p in spec.participants}
    with Store(tmp_path / "d.db") as store:
        run = asyncio.run(Conversation(spec, store, backends=backends).run_to_end())
    msgs = run.messages
    assert [m.speaker for m in msgs] == ["alice", "bob", "alice", "bob", "alice"]
    # Bob's last view: his system prompt, then alice=user, bob=assistant alternating.
    bob_last = backends["bob"].sent[-1]
    assert [(c.role, c.content) for c in bob_last] == [
        ("system", "You are Bob."),
        ("user", "Hello Bob!"),
        ("assistant", msgs[1].content),
        ("user", msgs[2].content),
    ]
    alice_last = backends["alice"].sent[-1]
    assert [(c.role, c.content) for c in alice_last] == [
        ("system", "You are Alice."),
        ("assistant", "Hello Bob!"),
        ("user", msgs[1].content),
        ("assistant", msgs[2].content),
        ("user", msgs[3].content),
    ]


def test_end_marker_ends_run_when_asked(tmp_path):
    spec = ConversationSpec(
        participants=[
            Participant(name="a", max_tokens=8, context_length=512),
            Participant(name="b", max_tokens=8, context_length=512),
        ],
        opener="Goodbye. [END]",
        max_messages=10,
        end_on="any",
    )
    run = asyncio.run(arun_conversation(spec, db=tmp_path / "d.db"))
    assert run.stop_reason == "end_marker" and len(run.messages) == 1
    assert run.messages[0].content == "Goodbye. [END]"  # the marker is kept verbatim


def wait_for_messages(db: Path, n: int, proc, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            try:
                rid = only_run_id(db)
                if len(db_messages(db, rid)) >= n:
                    return rid
            except (sqlite3.OperationalError, TypeError):
                pass
        time.sleep(0.05)
    raise AssertionError("the run did not get far enough")


def test_kill_9_then_resume_keeps_every_message_once(tmp_path):
    db = tmp_path / "runs" / "duologue.db"
    proc = start_cli("run", "--max-messages", "24", *SMALL, cwd=tmp_path)
    rid = wait_for_messages(db, 7, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = db_messages(db, rid)
    assert 7 <= len(kept) < 24
    before = {
        idx: content
        for idx, content in sqlite3.connect(db).execute("SELECT idx, content FROM messages WHERE run_id=?", (rid,))
    }
    # The store still says "running"; what people see says the process is gone.
    assert sqlite3.connect(db).execute("SELECT status FROM runs WHERE id=?", (rid,)).fetchone()[0] == "running"
    assert f"{rid}" in (listed := run_cli("ls", cwd=tmp_path, check=True).stdout) and "killed" in listed
    shown = run_cli("show", rid, cwd=tmp_path, check=True).stdout
    assert "status killed" in shown and f"duologue resume {rid}" in shown
    from duologue.store import RunFilter, Store

    with Store(db, create=False) as store:
        assert [r.status for r in store.query_runs(RunFilter()).rows] == ["killed"]

    proc = run_cli("resume", rid, cwd=tmp_path, check=True)
    assert "stop: max_messages" in proc.stdout
    rows = db_messages(db, rid)
    assert [idx for idx, _ in rows] == list(range(1, 25))
    assert [s for _, s in rows] == ["smollm2-a", "smollm2-b"] * 12
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    after = dict(conn.execute("SELECT idx, content FROM messages WHERE run_id=?", (rid,)).fetchall())
    assert all(after[i] == before[i] for i in before)  # nothing rewritten
    status, reason = conn.execute("SELECT status, stop_reason FROM runs WHERE id=?", (rid,)).fetchone()
    assert (status, reason) == ("finished", "max_messages")
    t = parse_markdown((tmp_path / "runs" / f"{rid}.md").read_text())
    assert len(t.messages) == 24 and [m.content for m in t.messages] == [after[i] for i in range(1, 25)]


def test_ctrl_c_stores_interrupted_and_resume_finishes(tmp_path):
    db = tmp_path / "runs" / "duologue.db"
    proc = start_cli("run", "--max-messages", "14", *SMALL, cwd=tmp_path)
    rid = wait_for_messages(db, 4, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert f"duologue resume {rid}" in err
    conn = sqlite3.connect(db)
    status, reason = conn.execute("SELECT status, stop_reason FROM runs WHERE id=?", (rid,)).fetchone()
    assert (status, reason) == ("interrupted", "interrupted")
    n = len(db_messages(db, rid))
    assert (tmp_path / "runs" / f"{rid}.md").read_text().count("\n### ") == n
    run_cli("resume", rid, cwd=tmp_path, check=True)
    assert [i for i, _ in db_messages(db, rid)] == list(range(1, 15))
    # A finished run is not resumed again.
    again = run_cli("resume", rid, cwd=tmp_path)
    assert again.returncode == 2 and "already finished" in again.stderr
