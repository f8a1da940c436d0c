"""Interactive mode, driven through a pseudo-terminal as a person at a keyboard would drive it."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pty
import re
import sqlite3
import sys
import threading

import pexpect
import pytest
from pexpect import fdpexpect
from rich.console import Console

from duologue import api
from duologue.interactive import TerminalInterjector
from duologue.spec import spec_from_dict
from duologue.terminal import TerminalRenderer
from helpers import cli_env


@contextlib.contextmanager
def at_a_terminal(start, gate: threading.Event):
    """Runs `start(console, fd)` (a coroutine giving a Run) in a thread whose screen and keyboard are a
    pseudo-terminal; yields (the terminal, a list that gets the Run or the error). `gate` is released
    on the way out, whatever happened, so that a held reply cannot keep the thread waiting."""
    master, slave = pty.openpty()
    out = os.fdopen(os.dup(slave), "w", buffering=1)
    console = Console(file=out, width=200, highlight=False, force_terminal=False)
    done: list = []

    def work():
        try:
            done.append(asyncio.run(start(console, slave)))
        except BaseException as err:  # pragma: no cover - shown by the caller's assertion
            done.append(err)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        yield fdpexpect.fdspawn(master, encoding="utf-8", timeout=30), done
        worker.join(30)
    finally:
        gate.set()
        worker.join(30)
        out.close()
        os.close(slave)
        os.close(master)


def test_a_person_pauses_and_speaks_as_an_outside_voice_and_as_a_participant(tmp_path, scripted_models):
    hold_bob = scripted_models.gates["bob"] = threading.Event()  # bob's first reply waits for the test
    spec = spec_from_dict(
        {
            "participants": [{"name": "alice", "system": "You are Alice."}, {"name": "bob", "system": "You are Bob."}],
            "opener": "Hello.",
            "max_messages": 7,
            "seed": 2,
        }
    )
    db = tmp_path / "d.db"

    def converse(console, fd):
        return api.arun_conversation(
            spec,
            db=db,
            make_backend=scripted_models.make,
            listeners=[TerminalRenderer(console)],
            interjector=TerminalInterjector(console, fd=fd),
        )

    with at_a_terminal(converse, hold_bob) as (term, done):
        term.expect("press Enter to pause")
        term.sendline("")  # the pause key, while bob is still answering the opener
        term.expect("pausing after this message")
        hold_bob.set()
        term.expect("paused. Speak as 1 alice, 2 bob")
        term.expect("as> ")
        term.sendline("moderator")
        term.expect("moderator> ")
        term.sendline("Mind the tide.")
        term.expect("as> ")
        term.sendline("1")  # a participant, by number
        term.expect("alice> ")
        term.sendline("I said this.")
        term.expect("as> ")
        term.sendline("")  # resume
        term.expect("resuming")
        term.expect("### moderator")
        term.expect("Mind the tide.")
    (run,) = done
    assert not isinstance(run, BaseException), run
    assert [(m.index, m.speaker, m.injected) for m in run.messages] == [
        (1, "alice", True),
        (2, "bob", False),
        (3, "moderator", True),
        (4, "alice", True),
        (5, "bob", False),
        (6, "alice", False),
        (7, "bob", False),
    ]
    assert run.messages[2].content == "Mind the tide." and run.messages[3].content == "I said this."
    # Stored, with an event saying where it came from.
    stored = api.load_run(run.id, db=db)
    assert [m.injected for m in stored.messages] == [m.injected for m in run.messages]
    events = [(e["kind"], e["message_index"], e["data"]["source"]) for e in api.run_events(run.id, db=db)]
    assert events == [("injection", 3, "interactive"), ("injection", 4, "interactive")]
    # Rendered: the transcript has a block for the outside voice.
    md = (tmp_path / f"{run.id}.md").read_text()
    assert "\n\n---\n\n### moderator\n\nMind the tide.\n\n---\n\n### alice\n\nI said this.\n\n---\n\n" in md
    # Seen by the next speaker: bob hears both, the voice by name; alice later hears her message as her own.
    (bob,) = scripted_models.made_for("bob")
    assert bob.requests[1].pairs[-2:] == [("user", "moderator: Mind the tide."), ("user", "I said this.")]
    (alice,) = scripted_models.made_for("alice")
    assert ("assistant", "I said this.") in alice.requests[0].pairs


def test_end_of_input_just_lets_the_run_go_on(tmp_path, scripted_models):
    read, write = os.pipe()
    os.close(write)  # nobody at the keyboard
    spec = spec_from_dict({"participants": [{"name": "a"}, {"name": "b"}], "max_messages": 5})
    console = Console(file=open(os.devnull, "w"))
    try:
        run = asyncio.run(
            api.arun_conversation(
                spec,
                db=tmp_path / "d.db",
                make_backend=scripted_models.make,
                interjector=TerminalInterjector(console, fd=read),
            )
        )
    finally:
        os.close(read)
        console.file.close()
    assert len(run.messages) == 5 and not any(m.injected for m in run.messages[1:])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_interactive_cli_session_on_the_embedded_model(tmp_path):
    """`duologue run --interactive` in a real pseudo-terminal: pause, speak twice, resume, finish."""
    args = [
        "-m",
        "duologue",
        "run",
        "--interactive",
        "--max-messages",
        "6",
        "--max-tokens",
        "16",
        "--context-length",
        "1024",
        "--on-loop",
        "continue",
        "--opener",
        "Hello.",
    ]
    env = cli_env()
    child = pexpect.spawn(
        sys.executable, args, cwd=str(tmp_path), env=env, encoding="utf-8", timeout=600, dimensions=(50, 200)
    )
    log = child.logfile_read = open(tmp_path / "terminal.log", "w")  # what the person saw, for a failure
    try:
        child.expect("press Enter to pause")
        child.sendline("")
        child.expect("pausing after this message")
        child.expect("as> ")
        child.sendline("moderator")
        child.expect("moderator> ")
        child.sendline("Tell me about the sea.")
        child.expect("as> ")
        child.sendline("smollm2-a")
        child.expect("smollm2-a> ")
        child.sendline("The sea is wide.")
        child.expect("as> ")
        child.sendline("")
        child.expect("resuming")
        child.expect("### moderator")
        child.expect("stop: max_messages")
        child.expect(pexpect.EOF)
    finally:
        child.close()
        log.close()
    assert child.exitstatus == 0, child.before
    conn = sqlite3.connect(tmp_path / "runs" / "duologue.db")
    (rid,) = conn.execute("SELECT id FROM runs").fetchone()
    rows = conn.execute(
        "SELECT idx, speaker, content, injected FROM messages WHERE run_id=? ORDER BY idx", (rid,)
    ).fetchall()
    assert len(rows) == 6
    k = next(i for i, r in enumerate(rows) if r[1] == "moderator")
    assert k >= 2  # after at least the opener and one answer
    assert rows[k][2:] == ("Tell me about the sea.", 1)
    assert rows[k + 1][1:] == ("smollm2-a", "The sea is wide.", 1)
    if k + 2 < len(rows):  # the next speaker answered, as the one after smollm2-a
        assert rows[k + 2][1] == "smollm2-b" and rows[k + 2][3] == 0
    md = (tmp_path / "runs" / f"{rid}.md").read_text()
    assert "### moderator\n\nTell me about the sea.\n\n---\n\n### smollm2-a\n\nThe sea is wide.\n\n---\n\n" in md


def test_a_resumed_run_can_be_interactive_too(tmp_path, scripted_models):
    """An interrupted run, resumed with the interjector: a voice spoken during the resumed part is stored
    as injected and heard by the next speaker."""
    db = tmp_path / "d.db"
    spec = spec_from_dict(
        {"participants": [{"name": "alice"}, {"name": "bob"}], "opener": "Hello.", "max_messages": 6, "seed": 3}
    )
    never = scripted_models.gates["bob"] = threading.Event()  # bob's first reply never comes: the run is cut there

    async def cut_short():
        task = asyncio.create_task(api.arun_conversation(spec, db=db, make_backend=scripted_models.make))
        while not scripted_models.made_for("bob"):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # bob is waiting at his gate
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        never.set()  # let the thread bob waited in go

    asyncio.run(cut_short())
    (interrupted,) = api.list_runs(db=db)
    assert interrupted["status"] == "interrupted" and interrupted["messages"] == 1

    hold = scripted_models.gates["bob"] = threading.Event()  # the resumed bob waits until the pause is asked for

    def resume(console, fd):
        return api.aresume_run(
            interrupted["id"],
            db=db,
            make_backend=scripted_models.make,
            listeners=[TerminalRenderer(console)],
            interjector=TerminalInterjector(console, fd=fd),
        )

    with at_a_terminal(resume, hold) as (term, done):
        term.expect("press Enter to pause")
        term.sendline("")
        term.expect("pausing after this message")
        hold.set()
        term.expect("as> ")
        term.sendline("moderator")
        term.expect("moderator> ")
        term.sendline("Speak of rivers.")
        term.expect("as> ")
        term.sendline("")
        term.expect("resuming")
    (run,) = done
    assert not isinstance(run, BaseException), run
    assert run.id == interrupted["id"] and run.status == "finished" and len(run.messages) == 6
    assert [(m.speaker, m.injected) for m in run.messages[:3]] == [("alice", True), ("bob", False), ("moderator", True)]
    assert run.messages[2].content == "Speak of rivers."
    alice = scripted_models.made_for("alice")[-1]
    assert alice.requests[0].pairs[-1] == ("user", "moderator: Speak of rivers.")


def test_the_pause_notice_waits_for_the_message_and_an_injection_is_shown_once(tmp_path, scripted_models):
    """Enter pressed while bob is answering: the notice comes after bob's message, on a line of its own;
    what the person says is printed once, as the injected message (not again as an event line)."""
    hold_bob = scripted_models.gates["bob"] = threading.Event()
    spec = spec_from_dict(
        {"participants": [{"name": "alice"}, {"name": "bob"}], "opener": "Hello.", "max_messages": 4, "seed": 5}
    )
    interjectors: list[TerminalInterjector] = []

    def converse(console, fd):
        renderer = TerminalRenderer(console)
        interjectors.append(TerminalInterjector(console, fd=fd, renderer=renderer))
        return api.arun_conversation(
            spec,
            db=tmp_path / "d.db",
            make_backend=scripted_models.make,
            listeners=[renderer],
            interjector=interjectors[0],
        )

    seen = io.StringIO()
    with at_a_terminal(converse, hold_bob) as (term, done):
        term.logfile_read = seen
        term.expect("press Enter to pause")
        term.expect("### bob")
        term.sendline("")  # while bob is still answering
        for _ in range(300):  # the pause is asked for (read by the run's loop) before bob may answer
            if interjectors[0]._pause_asked:
                break
            threading.Event().wait(0.01)
        hold_bob.set()
        term.expect("pausing after this message")
        term.expect("as> ")
        term.sendline("moderator")
        term.expect("moderator> ")
        term.sendline("Mind the tide.")
        term.expect("as> ")
        term.sendline("")
        term.expect("resuming")
        term.expect(r"### alice +#4")  # the run goes on after the injected message
    (run,) = done
    assert not isinstance(run, BaseException), run
    out = seen.getvalue().replace("\r\n", "\n")
    bob_said = run.messages[1].content
    assert out.index(bob_said) < out.index("⏸ pausing after this message…")
    assert "\n⏸ pausing after this message…\n" in out  # a line of its own
    after = out[out.index("resuming") :]
    assert after.count("Mind the tide.") == 1 and re.search(r"### moderator +#3  injected \(typed in\)", after)


def test_a_spec_injection_is_printed_once(tmp_path, scripted_models):
    spec = spec_from_dict(
        {
            "participants": [{"name": "alice"}, {"name": "bob"}],
            "max_messages": 4,
            "injections": [{"at": 3, "as": "moderator", "text": "Talk about deltas now."}],
        }
    )
    out = io.StringIO()
    renderer = TerminalRenderer(Console(file=out, width=200, highlight=False))
    asyncio.run(
        api.arun_conversation(spec, db=tmp_path / "d.db", make_backend=scripted_models.make, listeners=[renderer])
    )
    text = out.getvalue()
    assert text.count("Talk about deltas now.") == 1
    assert re.search(r"### moderator +#3  injected \(from the spec\)", text)
