"""Every OpenAI-compatible endpoint (OpenAI, OpenRouter, DeepSeek, DashScope,
vLLM, Ollama, LM Studio, llama-server, …) through the official `openai` SDK.

One streamed chat completion per attempt. Usage comes from the final chunk
when the server honours `stream_options.include_usage`; servers that send
none leave the counts empty. Reasoning arrives in one of three dialects —
`reasoning_content` deltas (DeepSeek, DashScope, vLLM), `reasoning` deltas
(OpenRouter, Ollama) or a `<think>…</think>` block at the start of the text
(Qwen3 and DeepSeek-R1 distills on plain servers) — and is kept apart from the
message text in `Reply.reasoning`.

Caching is the servers' own (OpenAI, DeepSeek and most of OpenRouter's models
reuse a repeated prompt prefix by themselves): the cached tokens they report
(`prompt_tokens_details.cached_tokens`, DeepSeek's `prompt_cache_hit_tokens`)
and the cache writes OpenRouter reports are recorded. OpenRouter is asked for
its usage accounting (`usage: {include: true}`) and its `usage.cost` (USD) is
recorded as the message's cost.
"""

from __future__ import annotations

import functools
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openai import AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ..errors import BackendError
from ..records import utcnow
from .base import ChatMessage, OnEvent, Reply, Sampling, TextDelta, Usage
from .hosted import HostedBackend
from .retry import TransientError, httpx, translate_sdk_error
from .settings import is_reasoning_model

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from ..spec import Participant
    from .provider import Provider


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verified TLS context (httpx's default) for every client: building one reads the CA bundle (~30 ms)."""
    return httpx.create_ssl_context()


class ThinkSplitter:
    """Splits a leading `<think>…</think>` block off streamed text.

    Text is held back only while it could still turn out to be (the end of) a
    think block, so ordinary replies stream without delay.
    """

    def __init__(self) -> None:
        self._state = "start"  # start -> thinking -> content, or start -> content
        self._buffer = ""
        self._strip = False  # drop the blank line(s) between </think> and the answer

    def feed(self, text: str) -> tuple[str, str]:
        """-> (content, reasoning) that can be released now."""
        self._buffer += text
        content = reasoning = ""
        if self._state == "start":
            head = self._buffer.lstrip()
            if head.startswith(THINK_OPEN):
                self._state, self._buffer = "thinking", head[len(THINK_OPEN) :]
            elif THINK_OPEN.startswith(head):
                return "", ""  # whitespace or a partial "<thi": wait for more
            else:
                self._state = "content"
        if self._state == "thinking":
            end = self._buffer.find(THINK_CLOSE)
            if end < 0:
                keep = _partial_suffix(self._buffer, THINK_CLOSE)
                reasoning = self._buffer[: len(self._buffer) - keep]
                self._buffer = self._buffer[len(self._buffer) - keep :]
                return "", reasoning
            reasoning = self._buffer[:end]
            self._buffer = self._buffer[end + len(THINK_CLOSE) :]
            self._state, self._strip = "content", True
        if self._strip:
            self._buffer = self._buffer.lstrip()
            self._strip = not self._buffer
        content, self._buffer = self._buffer, ""
        return content, reasoning

    def finish(self) -> tuple[str, str]:
        """What is left when the stream ends (an unclosed think block is all reasoning)."""
        rest, self._buffer = self._buffer, ""
        return ("", rest) if self._state == "thinking" else (rest, "")


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of `text` that could be the start of `marker`."""
    for n in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


def _reasoning_delta(delta: Any) -> str:
    # Servers differ in the field name; some send both with the same text, so take one.
    for name in ("reasoning_content", "reasoning"):
        value = getattr(delta, name, None)
        if isinstance(value, str) and value:
            return value
    return ""


def _usage(raw: Any, where: str) -> Usage:
    details = getattr(raw, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None)
    if cached is None:  # DeepSeek reports its context cache this way
        cached = getattr(raw, "prompt_cache_hit_tokens", None)
    usage = Usage(getattr(raw, "prompt_tokens", None), getattr(raw, "completion_tokens", None), cached)
    written = getattr(details, "cache_write_tokens", None)  # OpenRouter, for providers that charge cache writes
    usage.cache_write_tokens = written if isinstance(written, int) else None
    cost = getattr(raw, "cost", None)  # OpenRouter's accounting, in USD
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        usage.cost, usage.cost_source = float(cost), f"reported by {where}"
    return usage


@dataclass
class OpenAICompatBackend(HostedBackend):
    ask_usage: bool = True  # send stream_options.include_usage (dropped for servers that refuse it)
    # A reasoning model (o1, o3, o4, gpt-5 …; settings.is_reasoning_model): max_completion_tokens instead
    # of max_tokens, and no temperature or top_p, which those models refuse.
    reasoning: bool = False
    reasoning_effort: str | None = None  # sent as given when the participant sets it
    ask_cost: bool = False  # OpenRouter: ask for its usage accounting (usage.cost)

    @classmethod
    def for_participant(cls, p: Participant, provider: Provider, name: str):
        backend = super().for_participant(p, provider, name)
        backend.reasoning = is_reasoning_model(p, provider, name)
        backend.reasoning_effort = p.reasoning_effort
        backend.ask_cost = provider.name == "openrouter"
        return backend

    def client(self) -> AsyncOpenAI:
        if self._client is None:
            from openai import AsyncOpenAI, DefaultAsyncHttpxClient

            # Always an explicit key: left out, the SDK would read OPENAI_API_KEY and send the user's
            # OpenAI key to whatever server this is. Keyless servers accept any bearer token.
            self._client = AsyncOpenAI(
                api_key=self.api_key or "no-key",
                base_url=self.base_url,
                max_retries=0,
                timeout=httpx.Timeout(self.policy.timeout),
                http_client=DefaultAsyncHttpxClient(verify=_tls_context(), timeout=httpx.Timeout(self.policy.timeout)),
            )
        return self._client

    def request(self, messages: list[ChatMessage], sampling: Sampling) -> dict[str, Any]:
        body: dict[str, Any] = dict(
            model=self.api_model,
            messages=[{"role": m.role, "content": m.content} for m in messages],
            stream=True,
        )
        if self.reasoning:
            body["max_completion_tokens"] = sampling.max_tokens
        else:
            body.update(temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens)
        if self.reasoning_effort is not None:
            body["reasoning_effort"] = self.reasoning_effort
        if self.ask_usage:
            body["stream_options"] = {"include_usage": True}
        if self.ask_cost:
            body["usage"] = {"include": True}
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.extra:  # provider routing, reasoning effort, top_k, …: merged into the JSON body as given
            body.update(sampling.extra)
        return body

    async def _attempt(self, messages: list[ChatMessage], sampling: Sampling, on_event: OnEvent | None) -> Reply:
        t0 = time.perf_counter()
        text: list[str] = []
        reasoning: list[str] = []
        splitter = ThinkSplitter()
        usage, finish, ttft = Usage(), None, None

        def take(content: str, thought: str) -> None:
            if thought:
                reasoning.append(thought)
            if content:
                text.append(content)
                if on_event is not None:
                    on_event(TextDelta(content))

        try:
            # client.post, not chat.completions.create: the body is already plain JSON, and create's
            # per-request walk over every message of the history cost milliseconds per message.
            stream = await self.client().post(
                "/chat/completions",
                body=self.request(messages, sampling),
                cast_to=ChatCompletion,
                stream=True,
                stream_cls=AsyncStream[ChatCompletionChunk],
            )
            async with stream:
                async for chunk in stream:
                    if getattr(chunk, "usage", None):
                        usage = _usage(chunk.usage, self.where)
                    for choice in getattr(chunk, "choices", None) or []:
                        delta = getattr(choice, "delta", None)
                        thought = _reasoning_delta(delta)
                        content = getattr(delta, "content", None) or ""
                        if ttft is None and (thought or content):
                            ttft = time.perf_counter() - t0
                        reasoning.append(thought)
                        take(*splitter.feed(content))
                        finish = getattr(choice, "finish_reason", None) or finish
        except (TransientError, BackendError):
            raise
        except Exception as err:
            translated = translate_sdk_error(err, self.where)
            if translated is None:
                raise
            if isinstance(translated, BackendError) and self.ask_usage and "stream_options" in str(translated):
                self.ask_usage = False  # an older server that refuses the option: ask again without it
                return await self._attempt(messages, sampling, on_event)
            raise translated from None
        take(*splitter.finish())
        if finish is None:
            raise TransientError(f"the stream from {self.where} ended before the message did (no finish reason)")
        return Reply(
            text="".join(text),
            reasoning="".join(reasoning) or None,
            usage=usage,
            finish_reason=finish,
            ended_at=utcnow(),
            ttft=ttft,
            latency=time.perf_counter() - t0,
        )
