"""The Anthropic Messages API through the official `anthropic` SDK.

One streamed `messages.create` per attempt: the system prompt goes in its own
field, text deltas stream to listeners, thinking deltas become the reply's
reasoning, and usage comes from `message_start` (input) and `message_delta`
(output). A stream that ends without a stop reason was cut and is retried.

Sampling: the API version the SDK speaks (2026-10-21) rejects temperature,
top_p and top_k (the SDK no longer has them), so only max_tokens, stop
sequences and whatever the participant's `extra` holds (e.g. `thinking`) are
sent, and a warning before the run names what is not. A participant whose
`extra.anthropic_version` is "2023-06-01" is asked under that version (the
`anthropic-version` header) and is sent its temperature (0..1; checked before
the run), without top_p, which newer models refuse beside a temperature.

Prompt caching: every request marks cache breakpoints (`cache_control`) on the
system prompt, on the last user turn and on the user turn before it, which was
the last one the participant's previous request marked (three of the API's
four). So each turn reads the history the previous one wrote from the cache
(billed at a tenth of the input price) and writes only what is new since
(at 1.25 times); usage's cache reads and writes are recorded and priced.
Prompts shorter than the model's minimum cacheable length are simply not
cached. `extra.anthropic_cache = false` sends no breakpoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BackendError
from ..records import utcnow
from .base import ChatMessage, OnEvent, Reply, Sampling, TextDelta, Usage
from .hosted import HostedBackend
from .retry import TransientError, httpx, translate_sdk_error
from .settings import ANTHROPIC_LEGACY_VERSION

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from ..spec import Participant
    from .provider import Provider


# The API refuses empty or whitespace-only text (the default opener is a single space) and wants the
# conversation to start with the user: such turns are sent as this stand-in for "nothing said".
SILENCE = "…"


# The API takes at most four breakpoints per request; these requests use three.
EPHEMERAL = {"type": "ephemeral"}


def mark_cache(system: str | None, turns: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    """The system prompt and turns with cache breakpoints: the system prompt, the last user turn (what this
    request writes to the cache), and the user turn before it (where the previous request's prefix ends,
    read back from the cache). A marked text becomes a list of one text block carrying `cache_control`."""

    def block(text: str) -> list[dict[str, Any]]:
        return [{"type": "text", "text": text, "cache_control": dict(EPHEMERAL)}]

    marked_system: Any = block(system) if system else system
    users = [i for i, t in enumerate(turns) if t["role"] == "user"][-2:]
    out = [dict(t, content=block(t["content"])) if i in users else t for i, t in enumerate(turns)]
    return marked_system, out


def asks_prompt_cache(p: Participant) -> bool:
    """Whether a participant's requests mark cache breakpoints: unless `extra.anthropic_cache = false`."""
    return p.extra.get("anthropic_cache", True) is not False


def anthropic_messages(messages: list[ChatMessage]) -> tuple[str | None, list[dict[str, str]]]:
    """A participant's view as (system, messages) the Messages API accepts."""
    system = "\n\n".join(m.content for m in messages if m.role == "system") or None
    turns: list[dict[str, str]] = []
    for m in messages:
        if m.role == "system":
            continue
        content = m.content if m.content.strip() else SILENCE
        if turns and turns[-1]["role"] == m.role:  # roles must alternate: join runs of the same role
            turns[-1]["content"] += "\n\n" + content
        else:
            turns.append({"role": m.role, "content": content})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": SILENCE})
    return system, turns


@dataclass
class AnthropicBackend(HostedBackend):
    api_version: str | None = None  # extra.anthropic_version: sent as the anthropic-version header
    prompt_cache: bool = True  # mark cache breakpoints (extra.anthropic_cache = false: none)

    @classmethod
    def for_participant(cls, p: Participant, provider: Provider, name: str):
        backend = super().for_participant(p, provider, name)
        version = p.extra.get("anthropic_version")
        backend.api_version = version if isinstance(version, str) else None
        backend.prompt_cache = asks_prompt_cache(p)
        return backend

    def client(self) -> AsyncAnthropic:
        if self._client is None:
            from anthropic import AsyncAnthropic

            # An explicit key and base URL, so no profile, config file or ANTHROPIC_BASE_URL is consulted.
            self._client = AsyncAnthropic(
                api_key=self.api_key or "no-key",
                base_url=self.base_url,
                max_retries=0,
                timeout=httpx.Timeout(self.policy.timeout),
            )
        return self._client

    def request(self, messages: list[ChatMessage], sampling: Sampling) -> dict[str, Any]:
        system, turns = anthropic_messages(messages)
        marked: tuple[Any, list[dict[str, Any]]] = mark_cache(system, turns) if self.prompt_cache else (system, turns)
        body: dict[str, Any] = dict(
            model=self.api_model, max_tokens=sampling.max_tokens, messages=marked[1], stream=True
        )
        if system:
            body["system"] = marked[0]
        if sampling.stop:
            body["stop_sequences"] = list(sampling.stop)
        extra = {k: v for k, v in sampling.extra.items() if k not in ("anthropic_version", "anthropic_cache")}
        if self.api_version == ANTHROPIC_LEGACY_VERSION:
            extra = {"temperature": min(max(sampling.temperature, 0.0), 1.0), **extra}
        if extra:  # thinking, metadata, or sampling knobs for older API versions: passed as given
            body["extra_body"] = extra
        if self.api_version is not None:
            body["extra_headers"] = {"anthropic-version": self.api_version}
        return body

    async def _attempt(self, messages: list[ChatMessage], sampling: Sampling, on_event: OnEvent | None) -> Reply:
        t0 = time.perf_counter()
        text: list[str] = []
        reasoning: list[str] = []
        usage, finish, ttft = Usage(), None, None
        try:
            stream = await self.client().messages.create(**self.request(messages, sampling))
            async with stream:
                async for event in stream:
                    kind = getattr(event, "type", None)
                    if kind == "message_start":
                        u = getattr(getattr(event, "message", None), "usage", None)
                        if u is not None:
                            parts = [
                                getattr(u, f, None)
                                for f in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
                            ]
                            # input_tokens counts only the uncached part; report the whole prompt
                            usage.prompt_tokens = sum(n or 0 for n in parts)
                            usage.cached_tokens, usage.cache_write_tokens = parts[1], parts[2]
                    elif kind == "content_block_delta":
                        delta = getattr(event, "delta", None)
                        dtype = getattr(delta, "type", None)
                        piece = getattr(delta, "text", None) if dtype == "text_delta" else None
                        thought = getattr(delta, "thinking", None) if dtype == "thinking_delta" else None
                        if ttft is None and (piece or thought):
                            ttft = time.perf_counter() - t0
                        if thought:
                            reasoning.append(thought)
                        if piece:
                            text.append(piece)
                            if on_event is not None:
                                on_event(TextDelta(piece))
                    elif kind == "message_delta":
                        finish = getattr(getattr(event, "delta", None), "stop_reason", None) or finish
                        out = getattr(getattr(event, "usage", None), "output_tokens", None)
                        if out is not None:
                            usage.completion_tokens = out
        except (TransientError, BackendError):
            raise
        except Exception as err:
            translated = translate_sdk_error(err, self.where)
            if translated is None:
                raise
            raise translated from None
        if finish is None:
            raise TransientError(f"the stream from {self.where} ended before the message did (no stop reason)")
        return Reply(
            text="".join(text),
            reasoning="".join(reasoning) or None,
            usage=usage,
            finish_reason=finish,
            ended_at=utcnow(),
            ttft=ttft,
            latency=time.perf_counter() - t0,
        )
