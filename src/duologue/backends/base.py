"""The Backend protocol: what the engine asks of every model family.

A backend turns one participant's view of the conversation (a list of chat
messages) into a `Reply`, streaming text as it is produced. It knows nothing
about the store, the terminal or the other participant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # passed through to the provider


@dataclass
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens reused rather than evaluated (read from a provider's cache)
    cache_write_tokens: int | None = None  # prompt tokens written to the provider's cache (Anthropic's breakpoints)
    # Lookup decoding (the embedded engine): tokens drafted from the history, and those the model confirmed.
    draft_tokens: int | None = None
    accepted_tokens: int | None = None
    # What the request cost in USD: as the provider reported it (OpenRouter's usage.cost), else priced from
    # the price data where the run starts backends (costs/priced.py); None with `cost_source` "unknown: why".
    cost: float | None = None
    cost_source: str | None = None  # "reported by openrouter", "genai-prices 0.2.3", "free: …", "unknown: …"


@dataclass
class Reply:
    text: str
    reasoning: str | None = None
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    ttft: float | None = None
    latency: float | None = None
    attempts: int = 1


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text, as it streams."""

    text: str


@dataclass(frozen=True)
class RetryNotice:
    """The request failed and will be tried again; text streamed so far is void."""

    attempt: int
    cause: str
    wait: float


StreamEvent = TextDelta | RetryNotice
OnEvent = Callable[[StreamEvent], None]


class ContextFullError(Exception):
    """The request would not fit the model's context window."""

    def __init__(self, needed: int, limit: int):
        super().__init__(f"the next request needs {needed} tokens but the context holds {limit}")
        self.needed = needed
        self.limit = limit


# A rough count for models whose tokenizer is not at hand (hosted ones): English runs at about
# four characters a token; 3.5 errs on the side of counting too many, which is the safe side for
# deciding whether a request fits. Each message costs a few tokens of chat-template framing.
CHARS_PER_TOKEN = 3.5
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REQUEST = 3  # the assistant header the reply starts with


def chars_to_tokens(chars: int) -> int:
    """An estimate of the tokens `chars` characters of text make (CHARS_PER_TOKEN a token, rounded up)."""
    return int(chars / CHARS_PER_TOKEN + 0.999)


def estimate_tokens(messages: list[ChatMessage]) -> int:
    """An estimate of a request's prompt tokens, for backends that cannot count them exactly."""
    chars = sum(len(m.content) for m in messages)
    return chars_to_tokens(chars) + TOKENS_PER_MESSAGE * len(messages) + TOKENS_PER_REQUEST


@runtime_checkable
class Backend(Protocol):
    model: str  # the full model string, e.g. "local/smollm2"

    async def complete(
        self,
        messages: list[ChatMessage],
        sampling: Sampling,
        on_event: OnEvent | None = None,
    ) -> Reply:
        """Generate the next message. Raises BackendError when it fails for good."""
        ...

    async def aclose(self) -> None: ...


# Optional on a backend (the context strategies use them when present):
#   context_length: int             the window it was given or knows
#   count_tokens(messages) -> int   the exact prompt size; without it, estimate_tokens stands in
