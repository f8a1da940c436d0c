"""A backend that answers instantly from a script and remembers every request, for engine tests.

The `scripted_models` fixture gives a ScriptedModels whose `make` the Python API
takes as `make_backend=`: every participant then gets a ScriptedBackend,
whatever its model string (no files, keys or servers checked), so the API runs
end to end — store, transcripts, forks — without a model. For runs started
through the CLI it also registers a `scripted` provider (model strings
`scripted/<anything>`), the way a plugin adds one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from duologue.backends import registry
from duologue.backends.base import ChatMessage, Reply, Sampling, Usage
from duologue.backends.provider import Provider
from duologue.errors import BackendError
from duologue.records import utcnow


@dataclass
class Request:
    view: list[ChatMessage]
    sampling: Sampling

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(m.role, m.content) for m in self.view]


class ScriptedBackend:
    """Says "<name> says <n>" (or what `reply` returns), and counts one token per word plus framing."""

    def __init__(
        self,
        model: str = "test/scripted",
        *,
        name: str = "",
        context_length: int | None = None,
        reply: Callable[[int, list[ChatMessage]], str] | None = None,
        counts: bool = True,
    ):
        self.model = model
        self.name = name or model
        self.requests: list[Request] = []
        self.closed = False
        self.gate: threading.Event | None = None  # when set up, complete() waits for it (once)
        self._reply = reply
        if context_length is not None:
            self.context_length = context_length
        if not counts:  # a hosted-like backend: no tokenizer at hand
            self.count_tokens = None

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        return sum(len(m.content.split()) + 3 for m in messages)

    async def complete(self, messages, sampling, on_event=None) -> Reply:
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await asyncio.to_thread(gate.wait, 30)
        self.requests.append(Request(list(messages), sampling))
        n = len(self.requests)
        text = self._reply(n, list(messages)) if self._reply else f"{self.name} says {n}"
        now = utcnow()
        return Reply(
            text=text,
            usage=Usage(prompt_tokens=1, completion_tokens=len(text.split())),
            finish_reason="stop",
            started_at=now,
            ended_at=now,
            latency=0.0,
        )

    async def aclose(self) -> None:
        self.closed = True


class FailsAt(ScriptedBackend):
    """A ScriptedBackend whose n-th request fails for good, as when the server went away."""

    def __init__(self, n: int, **kw):
        super().__init__(**kw)
        self.n = n

    async def complete(self, messages, sampling, on_event=None):
        if len(self.requests) + 1 == self.n:
            raise BackendError("the server went away")
        return await super().complete(messages, sampling, on_event)


@dataclass
class ScriptedModels:
    """Every backend `make` made, in order; `made_for[name]` those of one participant."""

    made: list[ScriptedBackend] = field(default_factory=list)
    context_length: int | None = None
    reply: Callable[[int, list[ChatMessage]], str] | None = None
    gates: dict[str, threading.Event] = field(default_factory=dict)  # participant -> hold its first reply
    # (participant, its context_length, the window the run needs) for each backend the provider made
    windows: list[tuple[str, int | None, int | None]] = field(default_factory=list)

    def make(self, p, window: int | None = None) -> ScriptedBackend:
        self.windows.append((p.name, p.context_length, window))
        backend = ScriptedBackend(
            p.model, name=p.name, context_length=self.context_length or p.context_length, reply=self.reply
        )
        backend.gate = self.gates.get(p.name)
        self.made.append(backend)
        return backend

    def made_for(self, name: str) -> list[ScriptedBackend]:
        return [b for b in self.made if b.name == name]

    def requests_of(self, name: str) -> list[Request]:
        return [r for b in self.made_for(name) for r in b.requests]


@contextmanager
def scripted_provider() -> Iterator[ScriptedModels]:
    """The `scripted` provider registered while the block runs (for fixtures of any scope)."""
    models = ScriptedModels()
    registry.register_provider(
        Provider(
            "scripted",
            "scripted",
            description="tests: answers from a script",
            make=lambda p, provider, name, window=None: models.make(p, window),
            check=lambda p, provider, name: None,
        )
    )
    try:
        yield models
    finally:
        registry.unregister_provider("scripted")


@pytest.fixture
def scripted_models():
    with scripted_provider() as models:
        yield models


class Measured:
    """Wraps a real backend (whichever the registry makes) and notes every request it is sent."""

    def __init__(self, inner, name: str, sent: list):
        self.inner, self.name, self.sent = inner, name, sent
        self.model = inner.model

    @property
    def context_length(self) -> int:
        return self.inner.context_length

    def count_tokens(self, messages) -> int:
        return self.inner.count_tokens(messages)

    async def complete(self, messages, sampling, on_event=None):
        self.sent.append(
            (self.name, list(messages), sampling, self.inner.count_tokens(messages), self.inner.context_length)
        )
        return await self.inner.complete(messages, sampling, on_event)

    async def aclose(self) -> None:
        await self.inner.aclose()


class MeasuredModels:
    """`make` (for the API's `make_backend=`) makes the registry's real backends, wrapped to note in
    `sent` every request: (participant, view, sampling, prompt tokens, window)."""

    def __init__(self):
        self.sent: list = []

    def make(self, p) -> Measured:
        return Measured(registry.make_backend(p), p.name, self.sent)
