"""Per-participant setup: a private `history` preamble, and `api_key_env` for its own key."""

from __future__ import annotations

import pytest

from duologue import api
from duologue.backends.openai_compat import OpenAICompatBackend
from duologue.backends.registry import check_participant, parse_model_string
from duologue.errors import SpecError, UnknownModelError
from duologue.spec import Participant, load_conversation_spec
from duologue.store import Store

TOML = """
opener = "Shall we begin?"
max_messages = 5
on_loop = "continue"
on_near_loop = "continue"

[[participants]]
name = "a"
model = "scripted/x"
system = "You are A."
history = [
  {role = "user", content = "Earlier, someone asked: who are you?"},
  {role = "assistant", content = "I am the one who remembers."},
]

[[participants]]
name = "b"
model = "scripted/x"
system = "You are B."
"""


def test_history_is_seen_by_its_participant_only_after_its_system_prompt(scripted_models, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    spec = load_conversation_spec(path)
    run = api.run_conversation(spec, db=tmp_path / "d.db", make_backend=scripted_models.make)
    assert len(run.messages) == 5
    preamble = [
        ("user", "Earlier, someone asked: who are you?"),
        ("assistant", "I am the one who remembers."),
    ]
    for request in scripted_models.requests_of("a"):
        assert request.pairs[:4] == [("system", "You are A."), *preamble, ("assistant", "Shall we begin?")]
    for request in scripted_models.requests_of("b"):
        assert request.pairs[:2] == [("system", "You are B."), ("user", "Shall we begin?")]
        assert not any("remembers" in content for _, content in request.pairs)
    with Store(tmp_path / "d.db") as store:  # stored with the spec: a resume or fork sees it too
        stored = store.get_run(run.id).spec
    assert stored["participants"][0]["history"][1] == {"role": "assistant", "content": "I am the one who remembers."}
    assert stored["participants"][1]["history"] == []


def test_history_roles_are_user_or_assistant(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(TOML.replace('role = "assistant"', 'role = "system"'))
    with pytest.raises(SpecError) as caught:
        load_conversation_spec(path)
    message = str(caught.value)
    assert "history" in message and "\n" not in message.strip()


def test_api_key_env_must_be_set_before_the_run(monkeypatch):
    monkeypatch.delenv("DUOLOGUE_TEST_KEY_B", raising=False)
    p = Participant(
        name="b", model="openai-compatible/m", base_url="http://127.0.0.1:9/v1", api_key_env="DUOLOGUE_TEST_KEY_B"
    )
    with pytest.raises(UnknownModelError, match="DUOLOGUE_TEST_KEY_B") as caught:
        check_participant(p)
    assert "\n" not in str(caught.value)
    # A provider that requires its own key (openai) takes the participant's variable instead.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("DUOLOGUE_TEST_KEY_B", "sk-b")
    check_participant(p.model_copy(update={"model": "openai/gpt-4o-mini", "base_url": None}))


def test_each_participant_gets_the_key_its_variable_holds(monkeypatch):
    monkeypatch.setenv("DUOLOGUE_TEST_KEY_A", "sk-aaa")
    monkeypatch.setenv("DUOLOGUE_TEST_KEY_B", "sk-bbb")
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "sk-shared")
    keys = {}
    for name, env in (("a", "DUOLOGUE_TEST_KEY_A"), ("b", "DUOLOGUE_TEST_KEY_B"), ("c", None)):
        p = Participant(name=name, model="openai-compatible/m", base_url=f"http://127.0.0.1:9/{name}", api_key_env=env)
        provider, model = parse_model_string(p.model)
        backend = OpenAICompatBackend.for_participant(p, provider, model)
        keys[name] = backend.api_key
        assert "sk-" not in repr(backend)
        assert "sk-" not in p.model_dump_json()
    assert keys == {"a": "sk-aaa", "b": "sk-bbb", "c": "sk-shared"}
