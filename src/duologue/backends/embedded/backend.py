"""One participant's embedded model on a shared engine: its own sequence, decoded along with the others'."""

from __future__ import annotations

import asyncio
import time

from ...errors import BackendError
from ...records import utcnow
from ..base import ChatMessage, ContextFullError, OnEvent, Reply, Sampling, TextDelta, Usage
from .catalogue import gguf_facts, resolve_gguf
from .common import LlamaSettings, file_type
from .decode import Seq
from .engine import SharedLlamaEngine
from .lookup import lookup_default
from .weights import resolve as resolve_weights
from .weights import weights_path


class BatchedLlamaBackend:
    """One participant's embedded model on a shared engine: its own sequence, decoded along with the others'.

    Without an engine it gets a private one (one sequence, like LlamaCppBackend
    but with the engine's low-level decode loop), closed with the backend.
    """

    def __init__(self, model: str, settings: LlamaSettings | None = None, engine: SharedLlamaEngine | None = None):
        self.model = model
        self.settings = settings or LlamaSettings()
        if engine is None:  # a lone engine: the weights `auto` means alone (a pool's engine has its own)
            weights = resolve_weights(self.settings.weights, model)
            self.path = weights_path(resolve_gguf(model), weights)
        else:
            self.path = engine.path
        self._own_engine = engine is None
        self.engine = engine or SharedLlamaEngine(self.path, self.settings.threads)
        # Lookup's default follows the file loaded (as the stored spec's does: weights.loaded_type).
        self.lookup = lookup_default(self.settings.lookup, file_type(self.path) or "q4_1")
        self._seq: Seq | None = self.engine.lease(self.settings.context_length)
        # The context keeper counts a view's tokens just before the same view is sent: tokenize it once.
        self._last_view: tuple[tuple[ChatMessage, ...], list[int]] | None = None

    @property
    def context_length(self) -> int:
        return self.settings.context_length

    @property
    def kv_bytes(self) -> int:
        """The KV cache this participant's window takes in the engine (f16 keys and values; 0: unknown)."""
        per_token = gguf_facts(self.path).kv_bytes_per_token
        return per_token * self.context_length if per_token else 0

    def prompt_tokens(self, messages: list[ChatMessage]) -> list[int]:
        view = tuple(messages)
        if self._last_view is not None and self._last_view[0] == view:
            return self._last_view[1]
        tokens = self.engine.prompt_tokens(messages)
        self._last_view = (view, tokens)
        return tokens

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        return len(self.prompt_tokens(messages))

    async def complete(self, messages: list[ChatMessage], sampling: Sampling, on_event: OnEvent | None = None) -> Reply:
        if self._seq is None:
            raise BackendError(f"{self.model}: the backend is closed")
        started_at = utcnow()
        t0 = time.perf_counter()
        try:
            tokens = await asyncio.to_thread(self.prompt_tokens, messages)  # the first call loads the model
        except BackendError as err:
            raise BackendError(f"{self.model}: {err}") from None
        needed = len(tokens) + sampling.max_tokens
        if needed > self.context_length:
            raise ContextFullError(needed, self.context_length)
        on_text = (lambda text: on_event(TextDelta(text))) if on_event is not None else None
        g = await self.engine.generate(self._seq, tokens, sampling, on_text, t0=t0, lookup=self.lookup)
        return Reply(
            text=g.text,
            usage=Usage(
                prompt_tokens=g.prompt_tokens,
                completion_tokens=len(g.tokens),
                cached_tokens=g.cached_tokens,
                draft_tokens=g.drafted if self.lookup else None,
                accepted_tokens=g.accepted if self.lookup else None,
            ),
            finish_reason=g.finish_reason,
            started_at=started_at,
            ended_at=utcnow(),
            ttft=g.ttft,
            latency=g.latency,
        )

    async def aclose(self) -> None:
        if self._seq is not None:
            self.engine.release(self._seq)
            self._seq = None
            if self._own_engine:
                await asyncio.to_thread(self.engine.close)
