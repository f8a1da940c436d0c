"""Backends: one module per model family, chosen by the `provider/model` string."""

from .base import Backend, ChatMessage, ContextFullError, Reply, RetryNotice, Sampling, TextDelta, Usage
from .registry import PROVIDERS, Provider, check_participant, make_backend, parse_model_string

__all__ = [
    "Backend", "ChatMessage", "ContextFullError", "Reply", "RetryNotice", "Sampling", "TextDelta", "Usage",
    "PROVIDERS", "Provider", "check_participant", "make_backend", "parse_model_string",
]
