"""The `local` provider (builtin.py): which embedded backend a participant gets, and what is checked first."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ...errors import UnknownModelError
from .backend import BatchedLlamaBackend
from .catalogue import gguf_facts, require_engine, resolve_gguf
from .common import LlamaSettings
from .pool import current_pool
from .simple import LlamaCppBackend

if TYPE_CHECKING:
    from ...spec import Participant
    from ..base import Backend
    from ..provider import Provider

# Which embedded engine backs `local/...` participants: "shared" (the default: a llama.cpp sequence per
# participant, decoded together with the others in the pool) or "llama" (a llama-cpp-python `Llama`
# per participant, as duologue first did; kept for comparison, see simple.py).
EMBEDDED_ENGINE_ENV = "DUOLOGUE_EMBEDDED_ENGINE"


def check_participant(p: Participant, provider: Provider, name: str) -> None:
    require_engine(p.model)
    resolve_gguf(p.model)


def default_context(p: Participant) -> int:
    """The participant's context_length when given; else the window the run needs (the engine sets
    `_run_context`, see context.run_context), capped at the model's trained window; else 2048."""
    if p.context_length is not None:
        return p.context_length
    if p._run_context is None:
        return LlamaSettings.context_length
    trained = gguf_facts(resolve_gguf(p.model)).trained_context
    return min(p._run_context, trained) if trained else p._run_context


def make_backend(p: Participant, provider: Provider, name: str) -> Backend:
    """A participant's embedded backend.

    Inside an `EmbeddedPool` block (the API and the batch runner open one around
    conversations with embedded participants) it comes from the pool and shares
    its engines, so that concurrent conversations decode their tokens together;
    outside one it gets an engine of its own.
    """
    settings = LlamaSettings(default_context(p), p.threads, p.seed, p.weights, p.lookup)
    engine = os.environ.get(EMBEDDED_ENGINE_ENV, "shared")
    if engine == "llama":
        return LlamaCppBackend(p.model, settings)
    if engine != "shared":
        raise UnknownModelError(f"{EMBEDDED_ENGINE_ENV}={engine}: use 'shared' or 'llama'")
    pool = current_pool()
    return pool.backend(p.model, settings) if pool is not None else BatchedLlamaBackend(p.model, settings)
