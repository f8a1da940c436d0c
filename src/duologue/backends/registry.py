"""Model strings (`provider/model`) and the registry of the providers behind them.

Every provider comes in one way, `register_provider`: duologue's own (listed in
builtin.py) when the registry is first read, then those of installed packages
that declare an entry point in the `duologue.providers` group, and any that a
program registers itself. A plugin package declares, in its pyproject.toml:

    [project.entry-points."duologue.providers"]
    echo = "duologue_echo:PROVIDER"    # a Provider, a list of them, or a function returning either

The registry imports no backend: a provider names its factory ("module:function"),
imported only when one of its backends is made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import DuologueError, UnknownModelError
from ..plugins import Registry
from .builtin import PROVIDERS as BUILTIN_PROVIDERS
from .provider import Provider

if TYPE_CHECKING:
    from ..spec import Participant
    from .base import Backend

ENTRY_POINT_GROUP = "duologue.providers"

# What the engine and the API are given to make a participant's backend (make_backend below, or a
# test's or program's own).
BackendFactory = Callable[["Participant"], "Backend"]


def _check_name(provider: Provider) -> None:
    if "/" in provider.name or not provider.name:
        raise DuologueError(f"provider name '{provider.name}' must be non-empty and contain no '/'")


# The providers by name: duologue's own (builtin.py), then plugins' (entry points), then registered ones.
PROVIDERS: Registry[Provider] = Registry(
    "provider", Provider, ENTRY_POINT_GROUP, builtins=lambda: BUILTIN_PROVIDERS, check=_check_name
)


def register_provider(provider: Provider, *, replace: bool = False) -> None:
    """Add a provider (what plugins' entry points and duologue's built-ins go through)."""
    PROVIDERS.register(provider, replace=replace)


def unregister_provider(name: str) -> None:
    PROVIDERS.unregister(name)


def parse_model_string(model: str) -> tuple[Provider, str]:
    """`openrouter/qwen/qwen3-next` -> (the openrouter preset, "qwen/qwen3-next")."""
    provider, sep, name = model.partition("/")
    if not sep or not name:
        if not sep and model and model != "imported":  # a name without "/" is an alias that is not set
            from ..aliases import unknown_alias

            raise UnknownModelError(f"model {unknown_alias(model)}")
        raise UnknownModelError(f"model '{model}' is not of the form provider/model (e.g. local/smollm2)")
    if provider not in PROVIDERS:
        broken = PROVIDERS.why_missing(provider)
        if broken:
            raise UnknownModelError(f"model '{model}': provider '{provider}': {broken}")
        known = ", ".join(PROVIDERS)
        raise UnknownModelError(f"model '{model}': unknown provider '{provider}' (known: {known})")
    return PROVIDERS[provider], name


def check_participant(p: Participant) -> None:
    """Everything that can be checked before a run starts: model string, files, keys, base URL."""
    provider, name = parse_model_string(p.model)
    check = provider.checker()
    if check is not None:
        check(p, provider, name)


def make_backend(p: Participant, window: int | None = None) -> Backend:
    """A fresh backend for one participant (each gets its own context or client), from its provider;
    `window`: the context the run needs of it, when it sets no context_length (context.run_context)."""
    provider, name = parse_model_string(p.model)
    check_participant(p)
    return provider.make_backend(p, name, window)
