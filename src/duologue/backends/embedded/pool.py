"""The shared engines of the embedded participants of the conversations running in one process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from pathlib import Path
from typing import TYPE_CHECKING

from .backend import BatchedLlamaBackend
from .catalogue import resolve_gguf
from .common import LlamaSettings
from .cpu import usable_cores
from .engine import SharedLlamaEngine
from .runner import LlamaThread
from .weights import resolve as resolve_weights
from .weights import weights_path

if TYPE_CHECKING:
    from ...spec import ConversationSpec


class EmbeddedPool:
    """The shared engines of the embedded participants of conversations running in one process.

    Inside `async with EmbeddedPool():` every embedded backend that
    `make_backend` makes, in that task and the tasks it starts (the
    conversations of a batch, or several `arun_conversation` gathered), comes
    from the pool, which leases it a sequence on one of its engines; the
    engines are closed when the block ends. `streams` says, per model string,
    how many sequences to allocate from the start (a batch knows: its
    concurrency times the participants on that model, plus a spare), so that
    the context is not rebuilt while the first turns run; it grows past that
    when needed.

    `shards`: with one (the default) a model has one engine whose steps use the
    cores other programs leave free. With several, a model's conversations are
    split over that many engines of one thread each, each decoding in its own
    thread, a conversation's participants on the same one. Measured on 2
    cores with bare contexts: two one-thread contexts decoding in parallel gave
    292 tokens/s against 172 for one two-thread context when each had one
    sequence to decode, 319 against 288 with eight each (one-thread steps need
    no OpenMP barriers); a lone conversation is faster on one two-thread engine. A shard
    whose siblings have no participants left (their conversations ended first, at
    the end of a batch) decodes on their cores too; with bench/concurrency.py's 8
    conversations 1-3% of the steps ran so, and the gain is within the machine's
    noise (`--unborrowed`: 0.98x median, 0.97-1.05x over three pairs). Batches use
    `shards_for(concurrency)`. Participants with a fixed thread count share
    one engine per (model, threads).
    """

    def __init__(self, streams: Mapping[str, int] | None = None, shards: int = 1, conversations: int = 1):
        self._streams = dict(streams or {})
        self._shards = max(1, shards)
        # Several conversations per engine: their steps are batches, which other weights may serve best than
        # single tokens do (weights.fastest measures both).
        self.batched = conversations > self._shards
        self._engines: dict[tuple[Path, int | None], list[SharedLlamaEngine]] = {}
        self._placed: dict[tuple[tuple[Path, int | None], object], SharedLlamaEngine] = {}
        self._lock = threading.Lock()
        self._token: Token[EmbeddedPool | None] | None = None

    def backend(self, model: str, settings: LlamaSettings | None = None) -> BatchedLlamaBackend:
        settings = settings or LlamaSettings()
        path = weights_path(resolve_gguf(model), resolve_weights(settings.weights, model, self.batched))
        key = (path.resolve(), settings.threads)
        with self._lock:
            engines = self._engines.get(key)
            if engines is None:
                n = self._shards if settings.threads is None else 1
                streams = -(-self._streams.get(model, 1) // n)
                if n == 1:
                    engines = [SharedLlamaEngine(path, settings.threads, streams)]
                else:
                    engines = [SharedLlamaEngine(path, 1, streams, runner=LlamaThread(private=True)) for _ in range(n)]
                    for engine in engines:  # a shard borrows the cores of those whose conversations have ended
                        engine.siblings = [e for e in engines if e is not engine]
                self._engines[key] = engines
            engine = self._place(key, engines)
        return BatchedLlamaBackend(model, settings, engine)

    def _place(self, key, engines: list[SharedLlamaEngine]) -> SharedLlamaEngine:
        """The engine of this conversation's other participants, else the one with the fewest sequences."""
        if len(engines) == 1:
            return engines[0]
        conversation = _conversation.get()
        engine = self._placed.get((key, conversation)) if conversation is not None else None
        if engine is None:
            engine = min(engines, key=lambda e: e.leased)
            if conversation is not None:
                self._placed[(key, conversation)] = engine
        return engine

    @property
    def engines(self) -> list[SharedLlamaEngine]:
        with self._lock:
            return [e for shards in self._engines.values() for e in shards]

    async def aclose(self) -> None:
        with self._lock:
            engines = [e for shards in self._engines.values() for e in shards]
            self._engines.clear()
            self._placed.clear()
        for engine in engines:
            await asyncio.to_thread(engine.close)

    async def __aenter__(self) -> EmbeddedPool:
        self._token = _current_pool.set(self)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._token is not None:
            _current_pool.reset(self._token)
            self._token = None
        await self.aclose()


def shards_for(concurrency: int) -> int:
    """Shards for a pool running `concurrency` conversations at once: one per core, at most one per conversation."""
    return max(1, min(usable_cores(), concurrency))


# Which conversation the caller belongs to (the API and the batch runner set it around each
# conversation they run), so that a pool puts its participants on one shard.
_conversation: ContextVar[object | None] = ContextVar("duologue_conversation", default=None)


@contextmanager
def conversation_scope(key: object) -> Iterator[None]:
    """What runs inside this block, in this task and those it starts, belongs to conversation `key`."""
    token = _conversation.set(key)
    try:
        yield
    finally:
        _conversation.reset(token)


# The pool of the `async with EmbeddedPool()` block the caller runs in: a context variable, so each
# task sees its own (asyncio copies it into the tasks a block starts), and none outside a block.
_current_pool: ContextVar[EmbeddedPool | None] = ContextVar("duologue_embedded_pool", default=None)


def current_pool() -> EmbeddedPool | None:
    return _current_pool.get()


PROVIDER = "local"  # the provider whose models run in this process (builtin.py registers it by this name)


def is_embedded(model: str) -> bool:
    return model.partition("/")[0] == PROVIDER


def embedded_streams(specs: list[ConversationSpec], concurrency: int) -> dict[str, int]:
    """Sequences each embedded model's shared context needs with `concurrency` of these conversations at once.

    A conversation holds a sequence per participant on the model; with more than
    one conversation a spare lets the engine move caches to keep running ones together.
    """
    per_conversation: dict[str, int] = {}
    for spec in specs:
        for model in {p.model for p in spec.participants}:
            if is_embedded(model):
                n = sum(1 for p in spec.participants if p.model == model)
                per_conversation[model] = max(per_conversation.get(model, 0), n)
    k = min(concurrency, len(specs))
    return {model: k * n + (1 if k > 1 else 0) for model, n in per_conversation.items()}
