"""What the two hosted backends (OpenAI-compatible, Anthropic) share: settings, retries, closing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BackendError
from ..records import utcnow
from .base import ChatMessage, OnEvent, Reply, Sampling
from .retry import RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from ..spec import Participant
    from .provider import Provider


@dataclass
class HostedBackend:
    """A participant's model behind an HTTP API; subclasses make the SDK client and one attempt."""

    model: str  # the full model string, e.g. "openrouter/qwen/qwen3-next-80b-a3b-instruct"
    api_model: str  # what the server calls it, e.g. "qwen/qwen3-next-80b-a3b-instruct"
    base_url: str
    where: str  # the provider as named in errors
    api_key: str | None = field(default=None, repr=False)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    _client: Any = field(default=None, init=False, repr=False)

    @classmethod
    def for_participant(cls, p: Participant, provider: Provider, name: str):
        base_url = p.base_url or provider.base_url
        if not base_url:
            raise BackendError(f"{p.name}: {p.model} needs a base URL")
        where = provider.name if base_url == provider.base_url else f"{provider.name} at {base_url}"
        key_env = p.api_key_env or provider.key_env  # the participant's own variable first
        key = os.environ.get(key_env) if key_env else None
        return cls(p.model, name, base_url, where, key or None, RetryPolicy.for_participant(p))

    async def complete(self, messages: list[ChatMessage], sampling: Sampling, on_event: OnEvent | None = None) -> Reply:
        started_at = utcnow()
        reply = await call_with_retries(
            lambda attempt: self._attempt(messages, sampling, on_event),
            self.policy,
            what=self.model,
            on_event=on_event,
            secrets=[self.api_key],
        )
        reply.started_at = started_at  # the message began with the first attempt
        return reply

    async def _attempt(self, messages: list[ChatMessage], sampling: Sampling, on_event: OnEvent | None) -> Reply:
        raise NotImplementedError

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
