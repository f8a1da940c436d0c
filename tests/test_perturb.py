"""Perturbations in the spec: injections (as a participant or an outside voice) and changes of settings."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from duologue import api
from duologue.engine import Conversation
from duologue.errors import TranscriptFormatError
from duologue.spec import ConversationSpec, load_conversation_spec, spec_from_dict
from duologue.store import Store
from duologue.transcripts.jsonfmt import parse_json
from duologue.transcripts.markdown import parse_markdown, parse_markdown_with_voices
from helpers import run_cli
from scripted import FailsAt, ScriptedBackend

PERTURBED_TOML = """
max_messages = 8
opener = "Hello."

[[participants]]
name = "alice"
system = "You are Alice."

[[participants]]
name = "bob"
system = "You are Bob."

[[injections]]
at = 3
as = "bob"
text = "Bob was made to say this."

[[injections]]
at = 5
as = "moderator"
text = "A word from outside."

[[changes]]
at = 6
participant = "alice"
model = "test/other"
system = "You are Alice, changed."
temperature = 1.5
"""


def perturbed_spec(tmp_path) -> ConversationSpec:
    (tmp_path / "p.toml").write_text(PERTURBED_TOML)
    return load_conversation_spec(tmp_path / "p.toml")


def test_toml_injections_and_changes_are_read_and_stored_as_written(tmp_path):
    spec = perturbed_spec(tmp_path)
    assert [(i.at, i.as_, i.text) for i in spec.injections] == [
        (3, "bob", "Bob was made to say this."),
        (5, "moderator", "A word from outside."),
    ]
    assert spec.changes[0].settings == {"model": "test/other", "system": "You are Alice, changed.", "temperature": 1.5}
    dumped = spec.model_dump(mode="json")
    assert dumped["injections"][0] == {"at": 3, "as": "bob", "text": "Bob was made to say this."}
    assert ConversationSpec.model_validate(dumped) == spec
    # Changes apply from their message on, not before.
    assert spec.participants_at(5)[0].temperature == 0.7
    assert spec.participants_at(6)[0].temperature == 1.5 and spec.participants_at(6)[0].model == "test/other"


@pytest.mark.parametrize(
    "extra, needle",
    [
        ('[[injections]]\nat = 1\nas = "x"\ntext = "t"\n', "injections.0.at"),
        (
            '[[injections]]\nat = 4\nas = "x"\ntext = "a"\n[[injections]]\nat = 4\nas = "y"\ntext = "b"\n',
            "two injections at message 4",
        ),
        ('[[injections]]\nat = 4\nas = "x ↔ y"\ntext = "t"\n', "cannot contain '↔'"),
        ('[[changes]]\nat = 4\nparticipant = "carol"\ntemperature = 1.0\n', "'carol', which is not a participant"),
        ('[[changes]]\nat = 4\nparticipant = "a"\n', "sets model, system or temperature"),
        ('[[changes]]\nat = 4\nparticipant = "a"\ntop_k = 3\n', "changes.0.top_k: unknown field"),
    ],
)
def test_bad_perturbations_are_one_line_errors(tmp_path, extra, needle):
    (tmp_path / "bad.toml").write_text('[[participants]]\nname = "a"\n[[participants]]\nname = "b"\n' + extra)
    proc = run_cli("run", "-c", "bad.toml", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert needle in proc.stderr
    assert not (tmp_path / "runs").exists()


def run_perturbed(tmp_path, scripted_models):
    spec = perturbed_spec(tmp_path)
    return asyncio.run(api.arun_conversation(spec, db=tmp_path / "d.db", make_backend=scripted_models.make))


def test_injections_take_their_message_numbers_and_everyone_hears_them(tmp_path, scripted_models):
    run = run_perturbed(tmp_path, scripted_models)
    assert [(m.index, m.speaker, m.injected) for m in run.messages] == [
        (1, "alice", True),
        (2, "bob", False),
        (3, "bob", True),
        (4, "alice", False),
        (5, "moderator", True),
        (6, "bob", False),
        (7, "alice", False),
        (8, "bob", False),
    ]
    assert run.messages[2].content == "Bob was made to say this." and run.messages[2].model is None
    # Bob hears his injected message as his own; alice hears it as bob's.
    bob_at_6 = scripted_models.requests_of("bob")[1].pairs
    assert bob_at_6[:4] == [
        ("system", "You are Bob."),
        ("user", "Hello."),
        ("assistant", "bob says 1"),
        ("assistant", "Bob was made to say this."),
    ]
    alice_at_4 = scripted_models.requests_of("alice")[0].pairs
    assert alice_at_4[-2:] == [("user", "bob says 1"), ("user", "Bob was made to say this.")]
    # An outside voice is named, even between two participants, so it does not pass for the other one.
    assert bob_at_6[-1] == ("user", "moderator: A word from outside.")
    assert ("user", "moderator: A word from outside.") in scripted_models.requests_of("alice")[1].pairs


def test_changes_switch_model_system_and_temperature_from_their_message(tmp_path, scripted_models):
    run = run_perturbed(tmp_path, scripted_models)
    first, second = scripted_models.made_for("alice")
    assert (first.model, second.model) == ("local/smollm2", "test/other")
    assert first.closed and second.closed  # the replaced backend is closed too
    assert [r.sampling.temperature for r in first.requests] == [0.7]  # message 4
    assert [r.sampling.temperature for r in second.requests] == [1.5]  # message 7
    assert second.requests[0].view[0].content == "You are Alice, changed."
    assert run.messages[6].model == "test/other" and run.messages[3].model == "local/smollm2"
    # Bob is untouched.
    assert {r.sampling.temperature for r in scripted_models.requests_of("bob")} == {0.7}


def test_perturbations_are_recorded_as_events(tmp_path, scripted_models):
    run = run_perturbed(tmp_path, scripted_models)
    events = [
        (e["kind"], e["message_index"], e["detail"], e["data"]) for e in api.run_events(run.id, db=tmp_path / "d.db")
    ]
    assert ("injection", 3, "bob: Bob was made to say this.", {"source": "spec", "speaker": "bob"}) in events
    assert ("injection", 5, "moderator: A word from outside.", {"source": "spec", "speaker": "moderator"}) in events
    change = [e for e in events if e[0] == "change"]
    assert change == [
        (
            "change",
            6,
            "alice: model test/other, system You are Alice, changed., temperature 1.5",
            {"participant": "alice", "model": "test/other", "system": "You are Alice, changed.", "temperature": 1.5},
        )
    ]


def test_transcripts_mark_injections(tmp_path, scripted_models):
    run = run_perturbed(tmp_path, scripted_models)
    md = api.export_run(run.id, "md", db=tmp_path / "d.db")
    assert md.startswith("# alice ↔ bob\n")  # an outside voice is not a participant
    assert "\n\n---\n\n### moderator\n\nA word from outside.\n\n---\n\n### bob\n\n" in md
    assert (tmp_path / f"{run.id}.md").read_text() == md  # the transcript written during the run
    # Markdown needs to be told the outside voices, or finds them when the file adds up.
    with pytest.raises(TranscriptFormatError, match="'moderator' is not in the title"):
        parse_markdown(md)
    t = parse_markdown_with_voices(md)
    assert [m.speaker for m in t.messages] == [m.speaker for m in run.messages]
    assert parse_markdown(md, extra_speakers=["moderator"]) == t
    # JSON flags every injected message.
    exported = parse_json(api.export_run(run.id, "json", db=tmp_path / "d.db"))
    assert [m.injected for m in exported.messages] == [m.injected for m in run.messages]
    assert [m.index for m in exported.messages if m.injected] == [1, 3, 5]


def test_import_reads_outside_voices_and_marks_them_injected(tmp_path, scripted_models):
    run = run_perturbed(tmp_path, scripted_models)
    (tmp_path / "t.md").write_text(api.export_run(run.id, "md", db=tmp_path / "d.db"))
    imported = api.import_transcript(tmp_path / "t.md", db=tmp_path / "other.db")
    assert imported.participants == ["alice", "bob"]
    assert [(m.speaker, m.injected) for m in imported.messages][3:6] == [
        ("alice", False),
        ("moderator", True),
        ("bob", False),
    ]


MALFORMED = (
    "# a ↔ b\n\n**Started:** 2026-01-01 10:00:00\n**Ended:** 2026-01-01 10:01:00\n**Messages:** {n}\n\n---\n\n{blocks}"
)


@pytest.mark.parametrize(
    "n, blocks",
    [
        # A first message by a stranger: duologue's opener is always a participant's.
        (1, "### c\n\nhello\n\n---\n\n"),
        # Read as a voice, 'c' would make three messages where the header says four.
        (4, "### a\n\nhello\n\n---\n\n### c\n\nthere\n\n---\n\n### b\n\nhi\n\n---\n\n"),
    ],
)
def test_import_still_rejects_unknown_speakers_that_do_not_add_up(tmp_path, n, blocks):
    (tmp_path / "t.md").write_text(MALFORMED.format(n=n, blocks=blocks))
    proc = run_cli("import", "t.md", cwd=tmp_path)
    assert proc.returncode == 2 and "speaker 'c' is not in the title" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_resume_neither_repeats_injections_nor_records_them_twice(tmp_path):
    spec = spec_from_dict(
        {
            "participants": [{"name": "a"}, {"name": "b"}],
            "max_messages": 7,
            "seed": 1,
            "injections": [{"at": 3, "as": "voice", "text": "once"}],
            "changes": [{"at": 4, "participant": "a", "temperature": 1.0}],
        }
    )
    db = tmp_path / "d.db"
    with Store(db) as store:
        # b fails on its second request (message 5): after the injection and the change.
        backends = {"a": ScriptedBackend(name="a"), "b": FailsAt(2, name="b")}
        run = asyncio.run(Conversation(spec, store, backends=backends).run_to_end())
        assert run.status == "error" and len(run.messages) == 4
        again = store.get_run(run.id)
        backends = {"a": ScriptedBackend(name="a"), "b": ScriptedBackend(name="b")}
        run = asyncio.run(Conversation(spec, store, run=again, backends=backends).run_to_end())
        assert run.status == "finished" and len(run.messages) == 7
        assert [m.speaker for m in run.messages] == ["a", "b", "voice", "a", "b", "a", "b"]
        kinds = [(e["kind"], e["message_index"]) for e in store.get_events(run.id)]
        assert kinds.count(("injection", 3)) == 1 and kinds.count(("change", 4)) == 1
        assert [r.sampling.temperature for r in backends["a"].requests] == [1.0]


def test_change_to_a_model_that_does_not_exist_is_caught_before_the_run(tmp_path):
    (tmp_path / "c.toml").write_text(
        '[[participants]]\nname = "a"\n[[participants]]\nname = "b"\n'
        '[[changes]]\nat = 4\nparticipant = "b"\nmodel = "nosuch/model"\n'
    )
    proc = run_cli("run", "-c", "c.toml", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown provider 'nosuch'" in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_perturbed_run_on_the_embedded_model(tmp_path):
    """The CLI end to end: the TOML's perturbations happen, show and the exports mark them."""
    toml = PERTURBED_TOML.replace('model = "test/other"\n', "").replace("max_messages = 8", "max_messages = 7")
    (tmp_path / "p.toml").write_text(toml)
    proc = run_cli(
        "run",
        "-c",
        "p.toml",
        "--max-tokens",
        "16",
        "--context-length",
        "1024",
        "--on-loop",
        "continue",
        cwd=tmp_path,
        check=True,
    )
    # The injected message is shown once, as a message marked injected (not also as an event line).
    assert "### moderator   #5  injected (from the spec)\nA word from outside.\n" in proc.stdout
    assert "▸ change: alice:" in proc.stdout
    db = tmp_path / "runs" / "duologue.db"
    conn = sqlite3.connect(db)
    (rid,) = conn.execute("SELECT id FROM runs").fetchone()
    # Once as the injected message, and otherwise only where a model's reply repeats it (SmolLM2 may parrot it).
    echoed = sum(
        c.count("A word from outside.") for (c,) in conn.execute("SELECT content FROM messages WHERE injected=0")
    )
    assert proc.stdout.count("A word from outside.") == 1 + echoed
    rows = conn.execute(
        "SELECT idx, speaker, injected, model FROM messages WHERE run_id=? ORDER BY idx", (rid,)
    ).fetchall()
    assert rows[2] == (3, "bob", 1, None) and rows[4] == (5, "moderator", 1, None)
    assert rows[5][2] == 0 and rows[5][3] == "local/smollm2"
    md = (tmp_path / "runs" / f"{rid}.md").read_text()
    assert "### moderator\n\nA word from outside.\n\n---\n\n" in md
    show = run_cli("show", rid, cwd=tmp_path, check=True).stdout
    assert "#5  injected" in show and "▸ change: alice:" in show
    exported = json.loads(run_cli("export", rid, "-f", "json", cwd=tmp_path, check=True).stdout)
    assert [m["index"] for m in exported["messages"] if m["injected"]] == [1, 3, 5]
    assert exported["spec"]["injections"][1] == {"at": 5, "as": "moderator", "text": "A word from outside."}
