"""Model strings (`provider/model`) and the provider presets behind them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UnknownModelError

if TYPE_CHECKING:
    from ..spec import Participant
    from .base import Backend
    from .llamacpp_batched import EmbeddedPool


@dataclass(frozen=True)
class Provider:
    name: str
    api: str  # "local" (embedded llama.cpp), "openai" (chat completions) or "anthropic" (messages)
    base_url: str | None
    key_env: str | None  # the environment variable the key is read from
    key_required: bool
    description: str


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in [
        Provider("local", "local", None, None, False, "embedded llama.cpp: local/smollm2 or local/<path>.gguf"),
        Provider("openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY", True, "OpenAI"),
        Provider("openrouter", "openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", True, "OpenRouter"),
        Provider("deepseek", "openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", True, "DeepSeek"),
        Provider(
            "qwen", "openai", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY", True,
            "Qwen (DashScope compatible mode)",
        ),
        Provider("anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", True, "Anthropic"),
        Provider("ollama", "openai", "http://127.0.0.1:11434/v1", "OLLAMA_API_KEY", False, "Ollama server"),
        Provider("vllm", "openai", "http://127.0.0.1:8000/v1", "VLLM_API_KEY", False, "vLLM server"),
        Provider("lmstudio", "openai", "http://127.0.0.1:1234/v1", "LMSTUDIO_API_KEY", False, "LM Studio server"),
        Provider("llamacpp", "openai", "http://127.0.0.1:8080/v1", "LLAMACPP_API_KEY", False, "llama-server"),
        Provider(
            "openai-compatible", "openai", None, "OPENAI_COMPATIBLE_API_KEY", False,
            "any OpenAI-compatible endpoint; set base_url (--base-url-a/-b)",
        ),
    ]
}


def parse_model_string(model: str) -> tuple[Provider, str]:
    """`openrouter/qwen/qwen3-next` -> (the openrouter preset, "qwen/qwen3-next")."""
    provider, sep, name = model.partition("/")
    if not sep or not name:
        raise UnknownModelError(f"model '{model}' is not of the form provider/model (e.g. local/smollm2)")
    if provider not in PROVIDERS:
        known = ", ".join(PROVIDERS)
        raise UnknownModelError(f"model '{model}': unknown provider '{provider}' (known: {known})")
    return PROVIDERS[provider], name


def check_participant(p: "Participant") -> None:
    """Everything that can be checked before a run starts: model string, files, keys, base URL."""
    provider, _ = parse_model_string(p.model)
    if provider.api == "local":
        from .llamacpp import resolve_gguf

        resolve_gguf(p.model)
        return
    if provider.base_url is None and not p.base_url:
        raise UnknownModelError(f"{p.name}: {p.model} needs a base URL (--base-url-a/--base-url-b or base_url)")
    if provider.key_required and not os.environ.get(provider.key_env or ""):
        raise UnknownModelError(f"{p.name}: {p.model} needs an API key: set {provider.key_env}")


# Which embedded engine backs `local/...` participants: "shared" (the default; llamacpp_batched: a
# llama.cpp sequence per participant, decoded together with the others in the pool) or "llama" (a
# llama-cpp-python `Llama` per participant, as duologue first did; kept for comparison).
EMBEDDED_ENGINE_ENV = "DUOLOGUE_EMBEDDED_ENGINE"


def make_backend(p: "Participant", pool: "EmbeddedPool | None" = None) -> "Backend":
    """A fresh backend for one participant (each gets its own context or client).

    Embedded participants made with the same pool (`pool`, or the one of the
    `async with EmbeddedPool()` block this runs in) share its engines, so that
    concurrent conversations decode their tokens together; without one, each
    gets an engine of its own.
    """
    provider, name = parse_model_string(p.model)
    check_participant(p)
    if provider.api == "local":
        from .llamacpp import LlamaCppBackend, LlamaSettings

        context = p.context_length or LlamaSettings.context_length  # None: the embedded default
        settings = LlamaSettings(context, p.threads, p.seed)
        engine = os.environ.get(EMBEDDED_ENGINE_ENV, "shared")
        if engine == "llama":
            return LlamaCppBackend(p.model, settings)
        if engine != "shared":
            raise UnknownModelError(f"{EMBEDDED_ENGINE_ENV}={engine}: use 'shared' or 'llama'")
        from .llamacpp_batched import BatchedLlamaBackend, current_pool

        pool = pool or current_pool()
        return pool.backend(p.model, settings) if pool is not None else BatchedLlamaBackend(p.model, settings)
    if provider.api == "openai":
        from .openai_compat import OpenAICompatBackend

        return OpenAICompatBackend.for_participant(p, provider, name)
    from .anthropic import AnthropicBackend

    return AnthropicBackend.for_participant(p, provider, name)
