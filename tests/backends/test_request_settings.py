"""What reaches each provider: OpenAI reasoning models (max_completion_tokens, reasoning_effort, no
temperature or top_p), Anthropic's temperature under the older API version, and the one-line warnings
before a run for what a provider will not be sent."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from duologue.backends.base import ChatMessage, Sampling
from duologue.backends.registry import PROVIDERS, make_backend
from duologue.backends.settings import is_reasoning_model, pool_warnings, unsent_warnings
from duologue.cli import cli
from duologue.spec import Participant, spec_from_dict
from faultproxy import running

from .fakes import FakeAnthropic, Said, ScriptedOpenAI

VIEW = [ChatMessage("system", "be brief"), ChatMessage("user", "hi")]
SAMPLING = Sampling(temperature=0.3, top_p=0.9, max_tokens=16, seed=5)


@pytest.mark.parametrize(
    "model, reasoning",
    [
        ("openai/o1", True),
        ("openai/o3-mini", True),
        ("openai/o4-mini-2025-04-16", True),
        ("openai/gpt-5", True),
        ("openai/gpt-5.1", True),
        ("openai/gpt-5-mini", True),
        ("openai/gpt-5-chat-latest", False),
        ("openai/gpt-4o", False),
        ("openai/omni-moderation", False),
        ("openrouter/openai/o3", False),  # OpenRouter translates the parameters itself
        ("vllm/Qwen/Qwen3-8B", False),
    ],
)
def test_reasoning_models_are_known_by_name_on_openai(model, reasoning):
    p = Participant(name="p", model=model)
    provider, name = PROVIDERS[model.split("/")[0]], model.split("/", 1)[1]
    assert is_reasoning_model(p, provider, name) is reasoning
    forced = p.model_copy(update={"reasoning": not reasoning})
    assert is_reasoning_model(forced, provider, name) is (not reasoning)


def openai_body(monkeypatch, **fields):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return make_backend(Participant(name="p", **fields)).request(VIEW, SAMPLING)


def test_a_reasoning_model_gets_max_completion_tokens_and_no_temperature(monkeypatch):
    body = openai_body(monkeypatch, model="openai/o3-mini", reasoning_effort="high")
    assert body["max_completion_tokens"] == 16 and body["reasoning_effort"] == "high"
    assert not {"max_tokens", "temperature", "top_p"} & body.keys()
    assert body["seed"] == 5
    plain = openai_body(monkeypatch, model="openai/gpt-4o")
    assert (plain["temperature"], plain["top_p"], plain["max_tokens"]) == (0.3, 0.9, 16)
    assert "max_completion_tokens" not in plain and "reasoning_effort" not in plain
    # Any OpenAI-compatible endpoint, when the participant says so.
    forced = openai_body(
        monkeypatch, model="openai-compatible/thinker", base_url="http://127.0.0.1:9/v1", reasoning=True
    )
    assert forced["max_completion_tokens"] == 16 and "temperature" not in forced


def anthropic_body(monkeypatch, **fields):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    p = Participant(name="p", model="anthropic/claude-x", **fields)
    return make_backend(p).request(VIEW, Sampling(temperature=0.3, top_p=0.9, max_tokens=16, extra=p.extra))


def test_anthropic_sends_temperature_only_under_the_older_api_version(monkeypatch):
    body = anthropic_body(monkeypatch)
    assert "extra_body" not in body and "extra_headers" not in body and "temperature" not in body
    legacy = anthropic_body(monkeypatch, extra={"anthropic_version": "2023-06-01", "thinking": {"type": "disabled"}})
    assert legacy["extra_headers"] == {"anthropic-version": "2023-06-01"}
    assert legacy["extra_body"] == {"temperature": 0.3, "thinking": {"type": "disabled"}}  # no top_p beside it


def test_anthropic_temperature_above_one_is_a_one_line_error_before_the_run(monkeypatch, tmp_path):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[[participants]]\nname = "ada"\nmodel = "anthropic/claude-x"\ntemperature = 1.5\n'
        'extra = { anthropic_version = "2023-06-01" }\n[[participants]]\nname = "bo"\n'
    )
    result = CliRunner().invoke(cli, ["run", "-c", str(toml), "--db", str(tmp_path / "d.db")])
    assert result.exit_code == 2
    assert result.stderr.strip() == "duologue: error: ada: Anthropic takes a temperature from 0 to 1, got 1.5"
    assert not (tmp_path / "d.db").exists()


def test_warnings_name_each_setting_asked_for_that_a_provider_will_not_be_sent():
    spec = spec_from_dict(
        {
            "participants": [
                {"name": "ada", "model": "openai/o3", "temperature": 0.9, "top_p": 0.5, "reasoning_effort": "low"},
                {"name": "bo", "model": "anthropic/claude-x", "temperature": 0.2},
                {"name": "cy", "model": "local/smollm2", "reasoning_effort": "low", "extra": {"top_k": 5, "foo": 1}},
                {"name": "di", "model": "openai/gpt-4o", "temperature": 0.9},  # everything is sent
            ],
            "seed": 3,
        }
    )
    lines = unsent_warnings(spec)
    assert lines == [
        "warning: ada: temperature is not sent to openai (reasoning models refuse it)",
        "warning: ada: top_p is not sent to openai (reasoning models refuse it)",
        "warning: bo: seed is not sent to anthropic (the Messages API has no seed)",
        "warning: bo: temperature is not sent to anthropic (its current API version refuses it; "
        "extra.anthropic_version = '2023-06-01' sends it)",
        "warning: cy: reasoning_effort is not sent to local (the embedded engine has no reasoning setting)",
        "warning: cy: extra.foo is not sent to local "
        "(the embedded engine reads only top_k, min_p, repeat_penalty from extra)",
    ]
    # Settings left at their defaults are not warned about.
    quiet = spec_from_dict({"participants": [{"name": "a", "model": "openai/o3"}, {"name": "b"}]})
    assert unsent_warnings(quiet) == []
    # An experiment that sweeps temperature asks it of every participant in its pool.
    pool = [Participant(name="ada", model="openai/o3")]
    assert pool_warnings(pool, seed=False) == []
    assert pool_warnings(pool, sweeps=["temperature"], seed=False) == [
        "warning: ada: temperature is not sent to openai (reasoning models refuse it)"
    ]


def test_run_prints_the_warnings_before_it_starts(scripted_models, tmp_path):
    # The `scripted` provider, given the OpenAI reasoning rule for its models (as a plugin's provider may).
    from duologue.backends import registry
    from duologue.backends.provider import Provider

    original = registry.PROVIDERS["scripted"]
    registry.register_provider(
        Provider("scripted", "scripted", make=original.make, unsent="duologue.backends.settings:openai_unsent"),
        replace=True,
    )
    result = CliRunner().invoke(
        cli,
        ["run", "--a", "scripted/o3", "--b", "scripted/o3", "--temperature", "1.1", "--max-messages", "3"]
        + ["--quiet", "--db", str(tmp_path / "d.db")],
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == []  # scripted models are not reasoning models by name …
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[[participants]]\nname = "ada"\nmodel = "scripted/o3"\nreasoning = true\n'
        '[[participants]]\nname = "bo"\nmodel = "scripted/o3"\n'
    )
    result = CliRunner().invoke(
        cli, ["run", "-c", str(toml), "--temperature", "1.1", "--quiet", "--db", str(tmp_path / "d.db")]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: ada: temperature is not sent to scripted (reasoning models refuse it)"
    ]  # … unless the participant says so


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_reasoning_model_on_the_wire(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server = ScriptedOpenAI(lambda n, body: Said(["ok"]))
    with running(server) as url:
        p = Participant(name="p", model="openai/o4-mini", base_url=url, reasoning_effort="medium")
        backend = make_backend(p)

        async def go():
            try:
                return await backend.complete(VIEW, SAMPLING)
            finally:
                await backend.aclose()

        reply = asyncio.run(go())
    (body,) = server.requests
    assert reply.text == "ok"
    assert body["model"] == "o4-mini" and body["max_completion_tokens"] == 16 and body["reasoning_effort"] == "medium"
    assert not {"max_tokens", "temperature", "top_p"} & body.keys()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_anthropic_temperature_on_the_wire(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-k")
    server = FakeAnthropic("sk-ant-k")  # refuses temperature under the current version, as the API does
    with running(server) as url:

        async def go(p, sampling):
            backend = make_backend(p)
            try:
                return await backend.complete(VIEW, sampling)
            finally:
                await backend.aclose()

        current = Participant(name="p", model="anthropic/claude-x", base_url=url)
        legacy = current.model_copy(update={"extra": {"anthropic_version": "2023-06-01"}})
        asyncio.run(go(current, SAMPLING))
        asyncio.run(go(legacy, Sampling(temperature=0.3, top_p=0.9, max_tokens=16, extra=legacy.extra)))
    assert "temperature" not in server.requests[0] and server.headers[0]["anthropic-version"] != "2023-06-01"
    assert server.requests[1]["temperature"] == 0.3 and "top_p" not in server.requests[1]
    assert server.headers[1]["anthropic-version"] == "2023-06-01"
    assert "anthropic_version" not in server.requests[1]


def test_batch_prints_the_warnings_for_its_pool_and_what_it_sweeps(tmp_path):
    exp = tmp_path / "sweep.toml"
    exp.write_text(
        'temperatures = [0.2, 1.0]\nmax_messages = 4\n[[participants]]\nname = "thinker"\nmodel = "openai/o3"\n'
        '[[participants]]\nname = "claude"\nmodel = "anthropic/claude-x"\nreasoning_effort = "high"\n'
    )
    result = CliRunner().invoke(cli, ["batch", str(exp), "--dry-run", "--json", "--db", str(tmp_path / "d.db")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["conversations"] == 2  # stdout stays one JSON document
    assert result.stderr.splitlines() == [
        "warning: thinker: temperature is not sent to openai (reasoning models refuse it)",
        "warning: claude: temperature is not sent to anthropic (its current API version refuses it; "
        "extra.anthropic_version = '2023-06-01' sends it)",
        "warning: claude: reasoning_effort is not sent to anthropic (Anthropic takes extra.thinking instead)",
    ]


def test_under_the_older_anthropic_version_temperature_is_sent_and_top_p_is_not():
    legacy = {"anthropic_version": "2023-06-01"}
    spec = spec_from_dict(
        {
            "participants": [
                {"name": "bo", "model": "anthropic/claude-x", "temperature": 0.4, "top_p": 0.8, "extra": legacy},
                {"name": "al"},
            ]
        }
    )
    assert unsent_warnings(spec) == [
        "warning: bo: top_p is not sent to anthropic (newer models refuse it beside the temperature, which is sent)"
    ]
