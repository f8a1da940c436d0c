"""Three or more participants: the --participant syntax, turn orders, and what each participant is sent."""

from __future__ import annotations

import asyncio

import pytest

from duologue import api
from duologue.cli import build_spec
from duologue.engine import Conversation
from duologue.spec import load_conversation_spec, spec_from_dict
from duologue.store import Store
from duologue.transcripts.markdown import parse_markdown
from helpers import REPO, run_cli
from scripted import MeasuredModels, ScriptedBackend

THREE_WAY = REPO / "examples" / "three-way.toml"


def test_participant_option_describes_each_participant():
    spec = build_spec(
        None,
        {
            "participants": (
                'name=alice,model=local/smollm2,system="You are Alice, curious.",temperature=0.9',
                "name=bob,seed=4",
                "model=local/smollm2",
            ),
            "max_tokens": 40,
            "turn_order": "random",
        },
    )
    assert spec.names == ["alice", "bob", "smollm2"]
    alice, bob, third = spec.participants
    assert (alice.system, alice.temperature, bob.seed) == ("You are Alice, curious.", 0.9, 4)
    assert {p.max_tokens for p in spec.participants} == {40}  # shared flags reach every participant
    assert spec.turn_order == "random"


def test_shared_flags_reach_every_participant_of_a_file():
    spec = build_spec(THREE_WAY, {"temperature": 1.1, "temperature_a": 0.3, "max_messages": 4})
    assert [p.temperature for p in spec.participants] == [0.3, 1.1, 1.1]
    assert spec.max_messages == 4 and spec.names == ["alice", "bob", "carol"]


def test_unnamed_participants_get_distinct_names():
    spec = build_spec(None, {"participants": ("model=local/smollm2",) * 3})
    assert spec.names == ["smollm2-a", "smollm2-b", "smollm2-c"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--a", "local/smollm2", "--participant", "name=x", "--participant", "name=y"], "--a and --participant"),
        (["--participant", "name=x,colour=red", "--participant", "name=y"], "unknown field 'colour'"),
        (["--participant", 'name="x', "--participant", "name=y"], "a quote is not closed"),
        (["--participant", "name=x"], "participants: needs at least 2 entries, got 1"),
        (["--participant", "name=x,temperature=hot", "--participant", "name=y"], "participants.0.temperature"),
    ],
)
def test_bad_participant_options_are_one_line_errors(tmp_path, args, needle):
    proc = run_cli("run", *args, cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert needle in proc.stderr
    assert not (tmp_path / "runs").exists()


def expected_view(name: str, system: str, messages) -> list[tuple[str, str]]:
    """Written out independently of the engine: own messages as assistant, others' as 'name: text'."""
    view = [("system", system)]
    for m in messages:
        view.append(("assistant", m.content) if m.speaker == name else ("user", f"{m.speaker}: {m.content}"))
    return view


def three_party_spec(**extra):
    return spec_from_dict(
        {
            "participants": [{"name": n, "system": f"You are {n}."} for n in ("alice", "bob", "carol")],
            "opener": "Hello, both.",
            "max_messages": 8,
            "seed": 3,
            **extra,
        }
    )


def test_each_of_three_sees_its_own_side_with_names(tmp_path):
    spec = three_party_spec()
    backends = {n: ScriptedBackend(name=n) for n in spec.names}
    with Store(tmp_path / "d.db") as store:
        run = asyncio.run(Conversation(spec, store, backends=backends).run_to_end())
    assert run.title == "alice ↔ bob ↔ carol"
    assert [m.speaker for m in run.messages] == ["alice", "bob", "carol"] * 2 + ["alice", "bob"]
    for name, backend in backends.items():
        for request in backend.requests:
            index = len(request.view)  # system + every earlier message
            assert request.pairs == expected_view(name, f"You are {name}.", run.messages[: index - 1])


def test_random_turn_order_is_seeded_and_never_answers_itself(tmp_path):
    def speakers(seed: int) -> list[str]:
        spec = three_party_spec(turn_order="random", max_messages=30, seed=seed)
        with Store(tmp_path / f"{seed}-{len(list(tmp_path.iterdir()))}.db") as store:
            backends = {n: ScriptedBackend(name=n) for n in spec.names}
            run = asyncio.run(Conversation(spec, store, backends=backends).run_to_end())
        return [m.speaker for m in run.messages]

    first = speakers(11)
    assert first == speakers(11)  # the same seed, the same order (and so a resumed run draws alike)
    assert first != speakers(12)
    assert all(a != b for a, b in zip(first, first[1:], strict=False))
    assert set(first) == {"alice", "bob", "carol"}
    assert first != (["alice", "bob", "carol"] * 10)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_usage_guides_three_way_example_on_the_embedded_model(tmp_path):
    """Done means: examples/three-way.toml runs, and every request each participant got is its own view."""
    guide = (REPO / "docs" / "usage.md").read_text()
    assert "## Three voices, forks and perturbations" in guide and "examples/three-way.toml" in guide

    measured = MeasuredModels()
    spec = load_conversation_spec(THREE_WAY)
    run = asyncio.run(api.arun_conversation(spec, db=tmp_path / "runs" / "duologue.db", make_backend=measured.make))
    sent = measured.sent
    assert run.status == "finished" and len(run.messages) == spec.max_messages
    names = ["alice", "bob", "carol"]
    # Round robin, the moderator's message at 6 taking no one's turn.
    assert [m.speaker for m in run.messages] == [
        "alice",
        "bob",
        "carol",
        "alice",
        "bob",
        "moderator",
        "carol",
        "alice",
        "bob",
        "carol",
    ]
    systems = {p.name: p.system for p in spec.participants}
    assert sorted(who for who, *_ in sent) == sorted(m.speaker for m in run.messages if not m.injected)
    for name, view, sampling, prompt, window in sent:
        before = run.messages[: len(view) - 1]
        assert [(c.role, c.content) for c in view] == expected_view(name, systems[name], before)
        assert prompt + sampling.max_tokens <= window
    # Bob runs hotter from message 8 on (the file's change).
    bob_temps = [(len(view), s.temperature) for who, view, s, *_ in sent if who == "bob"]
    assert bob_temps == [(2, 0.7), (5, 0.7), (9, 1.1)]
    text = (tmp_path / "runs" / f"{run.id}.md").read_text()
    assert text.startswith("# alice ↔ bob ↔ carol\n\n")
    assert parse_markdown(text, extra_speakers=["moderator"]).participants == names
