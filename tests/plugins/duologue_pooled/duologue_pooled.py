"""A provider plugin that shares something between conversations, through the hooks the embedded provider
uses (duologue.backends.provider: `workload`, `conversation`, `prepare`, and the run's `window`).

`pooled/<anything>` answers like a server that keeps one connection pool per workload: every backend
made while a workload scope is open comes from that pool and learns which conversation it serves and
the window the run needs. tests/test_provider_hooks.py registers it and checks what it saw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from duologue.backends.base import Reply, Usage
from duologue.backends.provider import Provider, Workload
from duologue.records import utcnow


@dataclass
class Pool:
    conversations: int  # the workload's conversations
    at_once: int  # how many run at once
    closed: bool = False
    backends: list[PooledBackend] = field(default_factory=list)


POOLS: list[Pool] = []  # every pool opened, in order (what the tests read)
_pool: ContextVar[Pool | None] = ContextVar("pooled_pool", default=None)
_conversation: ContextVar[object | None] = ContextVar("pooled_conversation", default=None)


class PooledBackend:
    def __init__(self, model: str, pool: Pool | None, conversation: object | None, window: int | None):
        self.model, self.pool, self.conversation, self.window = model, pool, conversation, window

    async def complete(self, messages, sampling, on_event=None):
        now = utcnow()
        return Reply(
            text=f"pooled reply {len(messages)}",
            usage=Usage(prompt_tokens=len(messages), completion_tokens=3),
            finish_reason="stop",
            started_at=now,
            ended_at=now,
            latency=0.0,
        )

    async def aclose(self):
        pass


@asynccontextmanager
async def workload(provider: Provider, work: Workload) -> AsyncIterator[Pool]:
    pool = Pool(len(work.specs), work.at_once)
    POOLS.append(pool)
    token = _pool.set(pool)
    try:
        yield pool
    finally:
        _pool.reset(token)
        pool.closed = True


@contextmanager
def conversation(provider: Provider, key: object) -> Iterator[None]:
    token = _conversation.set(key)
    try:
        yield
    finally:
        _conversation.reset(token)


def prepare(participant, provider: Provider, name: str):
    """As it will run: here, the pool's size recorded in the participant's extra settings."""
    pool = _pool.get()
    return participant.model_copy(update={"extra": {**participant.extra, "pool_size": pool.at_once if pool else 0}})


def make_backend(participant, provider: Provider, name: str, window: int | None = None) -> PooledBackend:
    pool = _pool.get()
    backend = PooledBackend(participant.model, pool, _conversation.get(), window)
    if pool is not None:
        pool.backends.append(backend)
    return backend


PROVIDER = Provider(
    "pooled",
    "pooled",
    description="answers from a pool shared per workload",
    make=make_backend,
    workload=workload,
    conversation=conversation,
    prepare=prepare,
)
