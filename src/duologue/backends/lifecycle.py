"""The providers' lifecycle around conversations: a workload scope, each conversation's scope, a prepared spec.

The runner (runner.py) calls these for every conversation it runs, whatever its
providers: a provider that declares the hooks (provider.py: `workload`,
`conversation`, `prepare`) gets them, the others are left alone. The embedded
provider keeps its pool of engines this way (embedded/provider.py), as any
plugin could keep what it shares between conversations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager

from ..errors import UnknownModelError
from ..spec import ConversationSpec
from .provider import Provider, Workload, resolve
from .registry import parse_model_string


def providers_of(specs: Iterable[ConversationSpec]) -> list[Provider]:
    """The providers of every model these conversations may use (participants, changes, summarizer), by name."""
    found: dict[str, Provider] = {}
    for spec in specs:
        for model in spec.models():
            try:
                provider, _ = parse_model_string(model)
            except UnknownModelError:  # not the registry's: a caller's own factory answers for it (checked before)
                continue
            found.setdefault(provider.name, provider)
    return [found[name] for name in sorted(found)]


@asynccontextmanager
async def workload(specs: Iterable[ConversationSpec], concurrency: int | Mapping[str, int] = 1) -> AsyncIterator[None]:
    """Each provider's workload scope around these conversations (in the order of their names). `concurrency`:
    how many run at once, or per provider name (an experiment's [concurrency], "default" for the others)."""
    specs = tuple(specs)
    async with AsyncExitStack() as stack:
        for provider in providers_of(specs):
            if provider.workload is not None:
                at_once = (
                    concurrency
                    if isinstance(concurrency, int)
                    else concurrency.get(provider.name, concurrency.get("default", 1))
                )
                mine = tuple(s for s in specs if provider in providers_of([s]))
                await stack.enter_async_context(resolve(provider.workload)(provider, Workload(mine, at_once)))
        yield


@contextmanager
def conversation(spec: ConversationSpec, key: object) -> Iterator[None]:
    """Each provider's scope around one conversation (`key`: its run id)."""
    with ExitStack() as stack:
        for provider in providers_of([spec]):
            if provider.conversation is not None:
                stack.enter_context(resolve(provider.conversation)(provider, key))
        yield


def prepare(spec: ConversationSpec) -> ConversationSpec:
    """The spec with each participant as its provider will run it (inside the workload scope); a copy."""
    spec = spec.model_copy(deep=True)
    replaced = {ch.participant for ch in spec.changes if ch.model is not None}
    for i, p in enumerate(spec.participants):
        try:
            provider, name = parse_model_string(p.model)
        except UnknownModelError:  # a caller's own factory's model
            continue
        # A participant whose model a change replaces keeps what it asked for: the new model decides then.
        if provider.prepare is not None and p.name not in replaced:
            spec.participants[i] = resolve(provider.prepare)(p, provider, name)
    return spec
