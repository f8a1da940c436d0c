"""Costs over the real wire formats: Anthropic requests carry cache breakpoints (checked by a server that
speaks the Messages API and keeps a prompt cache as the API does) and the cache reads and writes it reports
are recorded and priced; OpenAI's cached tokens are priced; OpenRouter is asked for its accounting and its
own figure is the message's cost."""

import asyncio

import pytest

from duologue import api
from duologue.backends.anthropic import AnthropicBackend
from duologue.backends.base import ChatMessage, Sampling
from duologue.backends.registry import PROVIDERS
from duologue.costs.prices import price_data_version
from duologue.spec import ConversationSpec, Participant
from faultproxy import running
from helpers import by_hand, rates

from .fakes import FakeAnthropic, Said, ScriptedOpenAI

KEY = "sk-ant-duologue-test-key-5678"


def marks(body) -> list[str]:
    """Where a request's cache breakpoints are: "system" or "turn N" (its index among the turns)."""
    found = ["system"] if any(b.get("cache_control") for b in _blocks(body.get("system", ""))) else []
    for i, turn in enumerate(body["messages"]):
        if any(b.get("cache_control") for b in _blocks(turn["content"])):
            found.append(f"turn {i}")
    return found


def _blocks(content):
    return [] if isinstance(content, str) else content


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_anthropic_requests_mark_the_prefix_and_the_cache_reads_and_writes_are_priced(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server = FakeAnthropic(KEY, cache=True)
    with running(server) as url:

        def claude(name):
            return Participant(
                name=name, model="anthropic/claude-haiku-4-5", base_url=url, max_tokens=12, system=f"You are {name}."
            )

        spec = ConversationSpec(participants=[claude("ada"), claude("bo")], max_messages=9, opener="tell me a story")
        run = asyncio.run(api.arun_conversation(spec, db=tmp_path / "runs.db"))
    assert run.stop_reason == "max_messages" and len(server.requests) == 8
    for n, body in enumerate(server.requests):
        users = [i for i, t in enumerate(body["messages"]) if t["role"] == "user"]
        # The system prompt, the last user turn and the one before it (the previous request's last): 3 of 4.
        assert marks(body) == ["system", *(f"turn {i}" for i in users[-2:])], n
        assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    # A participant's request reads its previous one back from the cache and writes only what is new.
    generated = run.messages[1:]
    for m, usage in zip(generated, server.usages, strict=True):
        assert (m.cached_tokens, m.cache_write_tokens) == (
            usage["cache_read_input_tokens"],
            usage["cache_creation_input_tokens"],
        )
        assert m.prompt_tokens == usage["input_tokens"] + m.cached_tokens + m.cache_write_tokens
    assert generated[0].cached_tokens == 0 and all(m.cached_tokens > 0 for m in generated[2:])
    assert all(m.cache_write_tokens < m.prompt_tokens - m.cached_tokens + 1 for m in generated)
    r = rates("anthropic", "claude-haiku-4-5")
    for m, usage in zip(generated, server.usages, strict=True):
        expected = by_hand(r, usage["input_tokens"], m.cached_tokens, m.cache_write_tokens, m.completion_tokens)
        assert m.cost == pytest.approx(expected) and m.cost_source == price_data_version()


def test_a_participant_can_turn_the_breakpoints_off():
    provider = PROVIDERS["anthropic"]
    view = [ChatMessage("system", "be kind"), ChatMessage("user", "hello"), ChatMessage("assistant", "hi")]
    on = AnthropicBackend.for_participant(Participant(name="a", model="anthropic/x"), provider, "x")
    off = AnthropicBackend.for_participant(
        Participant(name="a", model="anthropic/x", extra={"anthropic_cache": False}), provider, "x"
    )
    assert marks(on.request(view, Sampling())) == ["system", "turn 0"]
    body = off.request(view, Sampling())
    assert marks(body) == [] and body["system"] == "be kind" and "extra_body" not in body


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_openai_cached_tokens_are_priced_and_openrouter_reports_its_own_cost(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    usage = {"prompt_tokens": 1500, "completion_tokens": 40, "prompt_tokens_details": {"cached_tokens": 1024}}
    openai = ScriptedOpenAI(lambda n, body: Said([f"reply {n}"], usage=usage))
    billed = {**usage, "cost": 0.00321, "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 200}}
    openrouter = ScriptedOpenAI(lambda n, body: Said([f"reply {n}"], usage=billed))
    with running(openai) as a_url, running(openrouter) as b_url:
        spec = ConversationSpec(
            participants=[
                Participant(name="a", model="openai/gpt-4o", base_url=a_url + "/v1", max_tokens=40),
                Participant(name="b", model="openrouter/anthropic/claude-haiku-4.5", base_url=b_url + "/v1"),
            ],
            max_messages=5,
            opener="hi",
        )
        run = asyncio.run(api.arun_conversation(spec, db=tmp_path / "runs.db"))
    assert all(body["usage"] == {"include": True} for body in openrouter.requests)
    assert all("usage" not in body for body in openai.requests)
    by_b = [m for m in run.messages if m.speaker == "b"]
    assert all(m.cost == 0.00321 and m.cost_source.startswith("reported by openrouter") for m in by_b)
    assert all(m.cache_write_tokens == 200 for m in by_b)
    by_a = [m for m in run.messages if m.speaker == "a" and not m.injected]
    expected = by_hand(rates("openai", "gpt-4o"), 1500 - 1024, 1024, 0, 40)
    assert by_a and all(m.cost == pytest.approx(expected) for m in by_a)
