"""`duologue models`: the presets, which keys are set (never their values), the embedded models;
and the spec fields the hosted backends read."""

import pytest
from click.testing import CliRunner

from duologue.backends.registry import PROVIDERS, check_participant
from duologue.cli import cli
from duologue.errors import SpecError, UnknownModelError
from duologue.spec import Participant, spec_from_dict


def test_models_lists_presets_and_key_state_without_values(monkeypatch):
    for p in PROVIDERS.values():
        if p.key_env:
            monkeypatch.delenv(p.key_env, raising=False)
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-very-secret-value")
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if "/<model>" in line}
    assert set(lines) == {f"{name}/<model>" for name, p in PROVIDERS.items() if p.api != "local"}
    assert "OPENROUTER_API_KEY" in lines["openrouter/<model>"] and " set " in lines["openrouter/<model>"]
    assert "not set" in lines["deepseek/<model>"] and "DEEPSEEK_API_KEY" in lines["deepseek/<model>"]
    assert "optional" in lines["vllm/<model>"] and "http://127.0.0.1:8000/v1" in lines["vllm/<model>"]
    assert "dashscope" in lines["qwen/<model>"]
    assert "local/smollm2" in result.output
    assert "sk-or-very-secret-value" not in result.output


def test_a_missing_key_is_named_before_the_run(monkeypatch):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    with pytest.raises(UnknownModelError, match="set DEEPSEEK_API_KEY"):
        check_participant(Participant(name="ds", model="deepseek/deepseek-chat"))


def test_toml_fields_for_hosted_participants():
    spec = spec_from_dict(
        {
            "participants": [
                {
                    "name": "qwen3-next",
                    "model": "openrouter/qwen/qwen3-next-80b-a3b-instruct",
                    "extra": {"provider": {"order": ["deepinfra"]}, "reasoning": {"effort": "low"}},
                    "max_attempts": 8,
                    "timeout": 90,
                    "retry_base_delay": 2,
                    "retry_max_delay": 60,
                    "show_reasoning": True,
                },
                {"name": "local", "model": "openai-compatible/x", "base_url": "http://127.0.0.1:8000/v1"},
            ]
        }
    )
    q, local = spec.participants
    assert (q.max_attempts, q.timeout, q.retry_base_delay, q.retry_max_delay) == (8, 90.0, 2.0, 60.0)
    assert q.extra["provider"] == {"order": ["deepinfra"]} and q.show_reasoning
    assert (local.max_attempts, local.timeout, local.retry_base_delay, local.retry_max_delay) == (5, 60.0, 1.0, 30.0)
    with pytest.raises(SpecError, match="max_attempts"):
        spec_from_dict({"participants": [{"name": "a", "max_attempts": 0}, {"name": "b"}]})
