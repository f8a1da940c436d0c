"""The OpenAI-compatible backend against a scripted server speaking the real streaming format:
usage, timings, finish reason, the three reasoning dialects, pass-through parameters, keys."""

import asyncio

import pytest

from duologue import api
from duologue.backends.base import ChatMessage, Sampling, TextDelta
from duologue.backends.openai_compat import ThinkSplitter
from duologue.backends.registry import PROVIDERS, make_backend
from duologue.engine import participant_view
from duologue.records import Message
from duologue.spec import ConversationSpec, Participant
from faultproxy import running

from .fakes import Said, ScriptedOpenAI


def split_all(pieces):
    s = ThinkSplitter()
    content, reasoning = [], []
    for piece in pieces:
        c, r = s.feed(piece)
        content.append(c), reasoning.append(r)
    c, r = s.finish()
    return "".join(content + [c]), "".join(reasoning + [r])


@pytest.mark.parametrize(
    "pieces, expected",
    [
        (["Hello", " world"], "Hello world"),
        (["<think>plan</think>\n\nHello"], "Hello"),
        (["<thi", "nk>pl", "an</th", "ink>", "\n", "\nHel", "lo"], "Hello"),
        (["  <think>a</think>b"], "b"),
        (["<3 you"], "<3 you"),
        (["<think>never closed"], ""),
        ([" "], " "),
        (["Hi <think>x</think>"], "Hi <think>x</think>"),  # only a block at the start is reasoning
    ],
)
def test_think_splitter_content(pieces, expected):
    assert split_all(pieces)[0] == expected


def test_think_splitter_reasoning_and_streaming():
    assert split_all(["<thi", "nk>pl", "an</th", "ink>ok"]) == ("ok", "plan")
    assert split_all(["<think>never closed"]) == ("", "never closed")
    s = ThinkSplitter()
    assert s.feed("Hello") == ("Hello", "")  # ordinary text is not held back


def test_participant_view_shows_reasoning_only_when_asked():
    a, b = Participant(name="a", show_reasoning=True), Participant(name="b")
    msgs = [
        Message(1, "a", " "),
        Message(2, "b", "hi", reasoning="b thinks"),
        Message(3, "a", "yes", reasoning="a thinks"),
    ]
    view_b = participant_view(b, msgs, 2, shows_reasoning={"a"})
    assert [m.content for m in view_b[1:]] == [" ", "hi", "<think>a thinks</think>\n\nyes"]
    view_a = participant_view(a, msgs, 2, shows_reasoning={"a"})
    assert [m.content for m in view_a[1:]] == [" ", "hi", "yes"]  # b's reasoning stays hidden; a's own too
    assert participant_view(b, msgs, 2)[-1] == ChatMessage("user", "yes")


def backend_for(base_url, **fields):
    return make_backend(Participant(name="p", model="openai-compatible/scripted", base_url=base_url + "/v1", **fields))


async def complete(backend, sampling=Sampling(max_tokens=16, seed=5)):
    deltas = []
    try:
        reply = await backend.complete(
            [ChatMessage("system", "be brief"), ChatMessage("user", "hi")],
            sampling,
            lambda e: deltas.append(e.text) if isinstance(e, TextDelta) else None,
        )
    finally:
        await backend.aclose()
    return reply, deltas


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_usage_timings_finish_and_reasoning_content_are_recorded():
    server = ScriptedOpenAI(
        lambda n, body: Said(
            ["Hel", "lo"],
            reasoning=["let me ", "think"],
            finish="length",
            usage={
                "prompt_tokens": 12,
                "completion_tokens": 7,
                "total_tokens": 19,
                "prompt_tokens_details": {"cached_tokens": 4},
            },
        )
    )
    with running(server) as url:
        reply, deltas = asyncio.run(complete(backend_for(url)))
    assert reply.text == "Hello" and deltas == ["Hel", "lo"]  # reasoning is not streamed as text
    assert reply.reasoning == "let me think"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.cached_tokens) == (12, 7, 4)
    assert reply.finish_reason == "length" and reply.attempts == 1
    assert reply.ttft is not None and reply.latency >= reply.ttft >= 0
    assert reply.started_at <= reply.ended_at


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "said, text, reasoning",
    [
        (Said(["Hi"], reasoning=["hmm"], reasoning_field="reasoning"), "Hi", "hmm"),
        (Said(["<think>", "mull", "ing</think>", "\n\n", "Hi"]), "Hi", "mulling"),
        (Said(["Hi there"]), "Hi there", None),
    ],
)
def test_reasoning_dialects_and_missing_usage(said, text, reasoning):
    with running(ScriptedOpenAI(lambda n, body: said)) as url:
        reply, _ = asyncio.run(complete(backend_for(url)))
    assert (reply.text, reply.reasoning) == (text, reasoning)
    # The server sent no usage: counts stay empty rather than guessed.
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (None, None)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_request_carries_sampling_and_passes_extra_parameters_through(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-users-real-openai-key")
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    server = ScriptedOpenAI(lambda n, body: Said(["ok"]))
    extra = {
        "provider": {"order": ["deepinfra"], "allow_fallbacks": False},
        "reasoning": {"effort": "low"},
        "top_k": 20,
    }
    with running(server) as url:
        asyncio.run(
            complete(
                backend_for(url),
                Sampling(temperature=0.3, top_p=0.9, max_tokens=16, seed=5, stop=("[END]",), extra=extra),
            )
        )
    body, headers = server.requests[0], server.headers[0]
    assert body["model"] == "scripted" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.3, 0.9, 16, 5)
    assert body["stop"] == ["[END]"]
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert body["provider"] == extra["provider"] and body["reasoning"] == {"effort": "low"} and body["top_k"] == 20
    # A keyless server must never receive the user's OpenAI key.
    assert "sk-the-users-real-openai-key" not in headers.get("authorization", "")


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_server_that_refuses_stream_options_is_asked_again_without_them():
    server = ScriptedOpenAI(lambda n, body: Said(["fine"]), refuse_stream_options=True)
    with running(server) as url:
        reply, _ = asyncio.run(complete(backend_for(url)))
    assert reply.text == "fine" and reply.attempts == 1 and reply.usage.completion_tokens is None
    assert ["stream_options" in r for r in server.requests] == [True, False]


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_the_presets_key_is_sent(monkeypatch):
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "sk-compat-key")
    server = ScriptedOpenAI(lambda n, body: Said(["ok"]))
    with running(server) as url:
        asyncio.run(complete(backend_for(url)))
    assert server.headers[0]["authorization"] == "Bearer sk-compat-key"


def test_every_preset_named_in_the_design_exists():
    for name in (
        "openai",
        "openrouter",
        "deepseek",
        "qwen",
        "anthropic",
        "ollama",
        "vllm",
        "lmstudio",
        "llamacpp",
        "openai-compatible",
        "local",
    ):
        assert name in PROVIDERS
    assert PROVIDERS["qwen"].base_url.endswith("/compatible-mode/v1")
    assert PROVIDERS["openrouter"].key_env == "OPENROUTER_API_KEY"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_show_reasoning_lets_the_other_side_see_it(tmp_path):
    server = ScriptedOpenAI(lambda n, body: Said([f"answer {n}"], reasoning=[f"thought {n}"]))
    with running(server) as url:

        def p(name, show):
            return Participant(
                name=name, model="openai-compatible/scripted", base_url=url + "/v1", show_reasoning=show, max_tokens=8
            )

        spec = ConversationSpec(participants=[p("open", True), p("closed", False)], max_messages=5, opener="hi")
        run = asyncio.run(api.arun_conversation(spec, db=tmp_path / "runs.db"))
    assert run.stop_reason == "max_messages"
    # Requests alternate: 1 closed (msg 2), 2 open (msg 3), 3 closed (msg 4), 4 open (msg 5).
    assert [m.reasoning for m in run.messages] == [None, "thought 1", "thought 2", "thought 3", "thought 4"]
    seen_by_closed = server.requests[2]["messages"]
    assert seen_by_closed[-1] == {"role": "user", "content": "<think>thought 2</think>\n\nanswer 2"}
    seen_by_open = server.requests[3]["messages"]
    assert seen_by_open[-1] == {"role": "user", "content": "answer 3"}  # closed's reasoning stays hidden
    assert all("<think>" not in m["content"] for m in seen_by_open)
