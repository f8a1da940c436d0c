"""The `local` provider (builtin.py): which embedded backend a participant gets, and what is checked first."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ...errors import UnknownModelError
from .backend import BatchedLlamaBackend
from .catalogue import require_engine, resolve_gguf
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


def make_backend(p: Participant, provider: Provider, name: str) -> Backend:
    """A participant's embedded backend.

    Inside an `EmbeddedPool` block (the API and the batch runner open one around
    conversations with embedded participants) it comes from the pool and shares
    its engines, so that concurrent conversations decode their tokens together;
    outside one it gets an engine of its own.
    """
    context = p.context_length or LlamaSettings.context_length  # None: the embedded default
    settings = LlamaSettings(context, p.threads, p.seed)
    engine = os.environ.get(EMBEDDED_ENGINE_ENV, "shared")
    if engine == "llama":
        return LlamaCppBackend(p.model, settings)
    if engine != "shared":
        raise UnknownModelError(f"{EMBEDDED_ENGINE_ENV}={engine}: use 'shared' or 'llama'")
    pool = current_pool()
    return pool.backend(p.model, settings) if pool is not None else BatchedLlamaBackend(p.model, settings)
