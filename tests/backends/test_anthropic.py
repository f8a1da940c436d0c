"""The Anthropic backend through the official SDK against a local server speaking the Messages API
streaming wire format: system field, alternation, thinking, usage, stop reasons, retries."""

import asyncio

import pytest

from duologue import api
from duologue.backends.anthropic import SILENCE, anthropic_messages
from duologue.backends.base import ChatMessage, RetryNotice, Sampling, TextDelta
from duologue.backends.registry import make_backend
from duologue.engine import RunListener
from duologue.spec import ConversationSpec, Participant
from faultproxy import running

from .fakes import FakeAnthropic

KEY = "sk-ant-duologue-test-key-5678"


def test_views_become_valid_messages_api_requests():
    system, turns = anthropic_messages(
        [
            ChatMessage("system", "be kind"),
            ChatMessage("assistant", " "),
            ChatMessage("user", "hello"),
            ChatMessage("user", "again"),
            ChatMessage("assistant", "hi"),
        ]
    )
    assert system == "be kind"
    assert turns == [
        {"role": "user", "content": SILENCE},  # the API wants a user turn first
        {"role": "assistant", "content": SILENCE},  # whitespace-only text is refused
        {"role": "user", "content": "hello\n\nagain"},  # roles alternate
        {"role": "assistant", "content": "hi"},
    ]


def text_of(content) -> str:
    """A system prompt's or turn's text, sent as a string or as text blocks (with cache breakpoints)."""
    return content if isinstance(content, str) else "".join(b["text"] for b in content)


def claude(name, url, **fields):
    return Participant(name=name, model="anthropic/claude-test", base_url=url, max_tokens=12, **fields)


class Recorder(RunListener):
    def __init__(self):
        self.deltas, self.retries = [], []

    def text(self, run, index, speaker, delta):
        self.deltas.append(delta)

    def retry(self, run, index, speaker, notice):
        self.retries.append(notice)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_whole_conversation_through_the_anthropic_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server = FakeAnthropic(KEY)
    with running(server) as url:
        spec = ConversationSpec(
            participants=[
                claude("ada", url, system="You are Ada."),
                claude("bo", url, system="You are Bo.", extra={"thinking": {"type": "enabled", "budget_tokens": 8}}),
            ],
            max_messages=6,
        )
        run = asyncio.run(api.arun_conversation(spec, db=tmp_path / "runs.db"))
    assert run.status == "finished" and run.stop_reason == "max_messages" and len(run.messages) == 6
    assert [m.speaker for m in run.messages] == ["ada", "bo", "ada", "bo", "ada", "bo"]
    bo = run.messages[1]
    assert bo.content.startswith("reply 1: you said") and bo.model == "anthropic/claude-test"
    assert bo.reasoning == "pondering 1 quietly" and bo.finish_reason == "end_turn"
    assert (bo.prompt_tokens, bo.cached_tokens, bo.completion_tokens) == (15, 5, len(bo.content.split()))
    assert run.messages[2].reasoning is None  # ada asked for no thinking
    first = server.requests[0]
    assert text_of(first["system"]) == "You are Bo." and first["max_tokens"] == 12
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 8}
    # Ada speaks after her own opener: her view starts with a user turn, and bo's reasoning stays hidden.
    assert server.requests[1]["messages"][0]["role"] == "user"
    assert all("pondering" not in text_of(m["content"]) for r in server.requests for m in r["messages"])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_overload_cut_streams_and_error_events_are_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    faults = {1: "529", 2: "cut", 4: "error-event"}
    server = FakeAnthropic(KEY, faults=faults.get)
    recorder = Recorder()
    with running(server) as url:
        spec = ConversationSpec(
            participants=[claude("ada", url, retry_base_delay=0.01), claude("bo", url, retry_base_delay=0.01)],
            max_messages=3,
        )
        run = asyncio.run(api.arun_conversation(spec, db=tmp_path / "runs.db", listeners=[recorder]))
    assert run.status == "finished" and len(run.messages) == 3
    assert [m.attempts for m in run.messages[1:]] == [3, 2]
    assert run.messages[1].content.startswith("reply 3:")  # only the attempt that finished counts
    causes = [n.cause for n in recorder.retries]
    assert "HTTP 529" in causes[0] and "Overloaded" in causes[0]
    assert "ended before the message did" in causes[1]
    assert "overloaded" in causes[2].lower()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_wrong_key_fails_at_once_with_a_clear_cause(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong-key")
    with running(FakeAnthropic(KEY)) as url:
        backend = make_backend(claude("ada", url))

        async def go():
            try:
                return await backend.complete([ChatMessage("user", "hi")], Sampling(max_tokens=8))
            finally:
                await backend.aclose()

        with pytest.raises(Exception) as info:
            asyncio.run(go())
    assert type(info.value).__name__ == "BackendError"
    assert "HTTP 401 from anthropic at" in str(info.value) and "invalid x-api-key" in str(info.value)
    assert "sk-ant-wrong-key" not in str(info.value)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_text_streams_to_listeners(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with running(FakeAnthropic(KEY)) as url:
        backend = make_backend(claude("ada", url))
        events = []

        async def go():
            try:
                return await backend.complete(
                    [ChatMessage("system", "s"), ChatMessage("user", "tell me")], Sampling(max_tokens=8), events.append
                )
            finally:
                await backend.aclose()

        reply = asyncio.run(go())
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == reply.text
    assert not any(isinstance(e, RetryNotice) for e in events)
    assert reply.ttft is not None and reply.attempts == 1
