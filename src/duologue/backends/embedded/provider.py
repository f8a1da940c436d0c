"""The `local` provider (builtin.py): its backends, its checks, and its lifecycle hooks (backends/provider.py).

- `workload`: the pool of engines (pool.py) that a set of conversations' embedded participants share: one
  model in memory, sized for them from the start, split over one-thread shards when several run at once.
- `conversation`: keeps a conversation's participants on one shard of that pool.
- `prepare`: each participant's weights and lookup decoding as they will be used (`auto` resolved for the
  pool's workload), so that the stored spec says what ran.
- `make_backend`: a participant's backend, from the pool (or an engine of its own outside one), its window
  the one the run needs when it sets none.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ...errors import UnknownModelError
from .backend import BatchedLlamaBackend
from .catalogue import gguf_facts, require_engine, resolve_gguf
from .common import EMBEDDED_ENGINE_ENV, LlamaSettings
from .lookup import lookup_default
from .pool import EmbeddedPool, conversation_scope, current_pool, embedded_streams, shards_for
from .simple import LlamaCppBackend
from .weights import loaded_type
from .weights import resolve as resolve_weights

if TYPE_CHECKING:
    from ...spec import Participant
    from ..base import Backend
    from ..provider import Provider, Workload


def check_participant(p: Participant, provider: Provider, name: str) -> None:
    require_engine(p.model)
    resolve_gguf(p.model)


def default_context(p: Participant, window: int | None = None) -> int:
    """The participant's context_length when given; else the window the run needs (context.run_context),
    capped at the model's trained window; else 2048."""
    if p.context_length is not None:
        return p.context_length
    if window is None:
        return LlamaSettings.context_length
    trained = gguf_facts(resolve_gguf(p.model)).trained_context
    return min(window, trained) if trained else window


def make_backend(p: Participant, provider: Provider, name: str, window: int | None = None) -> Backend:
    """A participant's embedded backend: from the workload's pool (its engines shared with the other
    conversations running, decoding their tokens together), or with an engine of its own outside one."""
    settings = LlamaSettings(default_context(p, window), p.threads, p.seed, p.weights, p.lookup)
    engine = os.environ.get(EMBEDDED_ENGINE_ENV, "shared")
    if engine == "llama":
        return LlamaCppBackend(p.model, settings)
    if engine != "shared":
        raise UnknownModelError(f"{EMBEDDED_ENGINE_ENV}={engine}: use 'shared' or 'llama'")
    pool = current_pool()
    return pool.backend(p.model, settings) if pool is not None else BatchedLlamaBackend(p.model, settings)


@asynccontextmanager
async def workload(provider: Provider, work: Workload) -> AsyncIterator[EmbeddedPool]:
    """The pool these conversations' embedded participants share: the caller's, when it runs inside an
    `async with EmbeddedPool()` block; else a new one sized for them, closed when they have all ended."""
    pool = current_pool()
    if pool is not None:
        yield pool
        return
    k = work.at_once
    async with EmbeddedPool(embedded_streams(list(work.specs), k), shards_for(k), k) as pool:
        yield pool


def conversation(provider: Provider, key: object):
    """A conversation's participants on one shard of the pool."""
    return conversation_scope(key)


def prepare(p: Participant, provider: Provider, name: str) -> Participant:
    """The participant's weights and lookup decoding as they will be used: `auto` as the current pool's
    workload means it (weights.resolve). Left as asked under DUOLOGUE_EMBEDDED_ENGINE=llama (that engine
    loads the shipped file as it is, without lookup)."""
    if os.environ.get(EMBEDDED_ENGINE_ENV, "shared") == "llama":
        return p
    pool = current_pool()
    weights = resolve_weights(p.weights, p.model, pool is not None and pool.batched)
    return p.model_copy(update={"weights": weights, "lookup": lookup_default(p.lookup, loaded_type(p.model, weights))})
