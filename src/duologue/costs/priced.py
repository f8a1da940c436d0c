"""Each reply priced where the run makes its backends: the engine sees a cost in the reply's usage and never
a price.

`priced_factory` wraps whatever makes the participants' backends (the provider registry, or a caller's
own factory) so that every `Reply` comes back with `usage.cost` and `usage.cost_source` filled in
(costs/prices.py): the provider's own figure when it reported one, else the price data's.
"""

from __future__ import annotations

from typing import Any

from ..backends.base import Backend, ChatMessage, OnEvent, Reply, Sampling
from ..backends.registry import BackendFactory
from ..backends.registry import make_backend as registry_make_backend
from ..context import run_context
from ..spec import ConversationSpec, Participant
from .prices import price_usage


class PricedBackend:
    """A backend whose replies carry their cost; everything else is the wrapped backend's own."""

    def __init__(self, inner: Backend, participant: Participant):
        self._inner = inner
        self._participant = participant
        self.model = inner.model

    async def complete(self, messages: list[ChatMessage], sampling: Sampling, on_event: OnEvent | None = None) -> Reply:
        reply = await self._inner.complete(messages, sampling, on_event)
        p = self._participant
        price_usage(p.model, reply.usage, base_url=p.base_url, when=reply.started_at)
        return reply

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __getattr__(self, name: str) -> Any:  # context_length, count_tokens, kv_bytes, …
        return getattr(self._inner, name)


def priced_factory(spec: ConversationSpec, make_backend: BackendFactory | None) -> BackendFactory:
    """The factory the run makes its backends with: the caller's (a test's, a program's) or the provider
    registry's (given the window the run needs of a participant that sets none), each backend priced."""

    def make(p: Participant) -> Backend:
        if make_backend is not None:
            inner = make_backend(p)
        else:
            inner = registry_make_backend(p, window=run_context(spec, p) if p.context_length is None else None)
        return PricedBackend(inner, p)

    return make
