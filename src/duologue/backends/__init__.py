"""Backends: one module (or package) per model family, chosen by the `provider/model` string.

registry.py maps provider names to providers (provider.py); builtin.py lists
duologue's own; embedded/ is the in-process llama.cpp engine.
"""

from .base import Backend, ChatMessage, ContextFullError, Reply, RetryNotice, Sampling, TextDelta, Usage
from .provider import Provider
from .registry import PROVIDERS, check_participant, make_backend, parse_model_string, register_provider

__all__ = [
    "Backend",
    "ChatMessage",
    "ContextFullError",
    "Reply",
    "RetryNotice",
    "Sampling",
    "TextDelta",
    "Usage",
    "PROVIDERS",
    "Provider",
    "check_participant",
    "make_backend",
    "parse_model_string",
    "register_provider",
]
