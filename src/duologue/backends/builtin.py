"""duologue's own providers, registered as any plugin's are (see registry.py).

The factories are named, not imported: `duologue models` lists them without
loading an SDK or llama.cpp.
"""

from __future__ import annotations

from .provider import Provider, check_hosted

OPENAI = "duologue.backends.openai_compat:OpenAICompatBackend.for_participant"
ANTHROPIC = "duologue.backends.anthropic:AnthropicBackend.for_participant"
EMBEDDED = "duologue.backends.embedded.provider:make_backend"
EMBEDDED_CHECK = "duologue.backends.embedded.provider:check_participant"
# The embedded provider's lifecycle hooks (provider.py): its pool of engines, a conversation's shard, weights.
EMBEDDED_HOOKS = {
    hook: f"duologue.backends.embedded.provider:{hook}" for hook in ("workload", "conversation", "prepare")
}
# What each kind of backend does not send (the warnings before a run).
OPENAI_UNSENT = "duologue.backends.settings:openai_unsent"
ANTHROPIC_UNSENT = "duologue.backends.settings:anthropic_unsent"
EMBEDDED_UNSENT = "duologue.backends.settings:embedded_unsent"


def _openai(name: str, base_url: str | None, key_env: str, key_required: bool, description: str) -> Provider:
    return Provider(
        name,
        "openai",
        base_url,
        key_env,
        key_required,
        description,
        make=OPENAI,
        check=check_hosted,
        unsent=OPENAI_UNSENT,
    )


PROVIDERS: list[Provider] = [
    Provider(
        "local",
        "local",
        None,
        None,
        False,
        "embedded llama.cpp: local/smollm2 or local/<path>.gguf",
        make=EMBEDDED,
        check=EMBEDDED_CHECK,
        unsent=EMBEDDED_UNSENT,
        **EMBEDDED_HOOKS,
    ),
    _openai("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", True, "OpenAI"),
    _openai("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", True, "OpenRouter"),
    _openai("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", True, "DeepSeek"),
    _openai(
        "qwen",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        "DASHSCOPE_API_KEY",
        True,
        "Qwen (DashScope compatible mode)",
    ),
    Provider(
        "anthropic",
        "anthropic",
        "https://api.anthropic.com",
        "ANTHROPIC_API_KEY",
        True,
        "Anthropic",
        make=ANTHROPIC,
        check="duologue.backends.settings:check_anthropic",
        unsent=ANTHROPIC_UNSENT,
    ),
    _openai("ollama", "http://127.0.0.1:11434/v1", "OLLAMA_API_KEY", False, "Ollama server"),
    _openai("vllm", "http://127.0.0.1:8000/v1", "VLLM_API_KEY", False, "vLLM server"),
    _openai("lmstudio", "http://127.0.0.1:1234/v1", "LMSTUDIO_API_KEY", False, "LM Studio server"),
    _openai("llamacpp", "http://127.0.0.1:8080/v1", "LLAMACPP_API_KEY", False, "llama-server"),
    _openai(
        "openai-compatible",
        None,
        "OPENAI_COMPATIBLE_API_KEY",
        False,
        "any OpenAI-compatible endpoint; set base_url (--base-url-a/-b)",
    ),
]
