"""What a provider is: a name, its connection preset, and the factory that makes its backends.

A provider owns the `provider/...` model strings of its name. duologue's own
are listed in builtin.py; other packages add theirs through the
`duologue.providers` entry-point group (see registry.py). Both are `Provider`s
given to `register_provider`. This module imports no backend.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import TYPE_CHECKING, Any

from ..errors import UnknownModelError

if TYPE_CHECKING:
    from ..spec import ConversationSpec, Participant
    from .base import Backend

# make(participant, provider, model name[, window]) -> Backend; check(participant, provider, model name) -> None,
# raising UnknownModelError for what cannot work (missing file, key or base URL). `window`, when the factory
# takes it: the context (tokens) the run needs of a participant that sets no context_length (context.run_context).
MakeBackend = Callable[..., "Backend"]
CheckParticipant = Callable[["Participant", "Provider", str], None]
# unsent(participant, provider, model name) -> [(setting, why)]: the settings its backends do not send.
UnsentSettings = Callable[["Participant", "Provider", str], list[tuple[str, str]]]
# The lifecycle hooks (all optional), for what a provider shares between conversations (the embedded one:
# a pool of engines; a plugin's: a connection pool, a server it starts):
#   workload(provider, Workload) -> async context manager: entered around a set of conversations (one run,
#     or every conversation of a batch) before any of them starts, left when all have ended; a provider
#     keeps what it shares for them (it learns which of its conversations runs now through `conversation`).
#   conversation(provider, key) -> context manager: entered around each conversation (its run id as key).
#   prepare(participant, provider, model name) -> Participant: the participant as it will run (inside the
#     workload, so it may ask what the workload is), e.g. the weights `auto` means; the stored spec holds it.
OpenWorkload = Callable[["Provider", "Workload"], AbstractAsyncContextManager[Any]]
EnterConversation = Callable[["Provider", object], AbstractContextManager[Any]]
PrepareParticipant = Callable[["Participant", "Provider", str], "Participant"]
# Either the function itself or where to find it, "package.module:attribute" (imported on first use, so
# listing the providers never imports an SDK or llama.cpp).
Ref = str | Callable[..., Any]


@dataclass(frozen=True)
class Provider:
    name: str  # the part of the model string before the first "/"
    api: str  # "local" (embedded llama.cpp), "openai" (chat completions), "anthropic", or a plugin's own
    base_url: str | None = None
    key_env: str | None = None  # the environment variable the key is read from
    key_required: bool = False
    description: str = ""
    make: Ref = ""  # MakeBackend
    check: Ref | None = None  # CheckParticipant; None: only the model string is checked
    # UnsentSettings: which of a participant's settings this provider's backends do not send, and why
    # (backends/settings.py); None: all of them are sent.
    unsent: Ref | None = None
    workload: Ref | None = None  # OpenWorkload (see above)
    conversation: Ref | None = None  # EnterConversation
    prepare: Ref | None = None  # PrepareParticipant

    def factory(self) -> MakeBackend:
        return resolve(self.make)

    def make_backend(self, p: Participant, name: str, window: int | None = None) -> Backend:
        """A backend from the factory; the run's window is passed when the factory takes a `window`."""
        make = self.factory()
        return make(p, self, name, window=window) if _takes_window(make) else make(p, self, name)

    def checker(self) -> CheckParticipant | None:
        return resolve(self.check) if self.check is not None else None

    def unsent_settings(self, p: Participant, name: str) -> list[tuple[str, str]]:
        """(setting, why) for each of p's settings the provider will not be sent (the warnings before a run)."""
        return list(resolve(self.unsent)(p, self, name)) if self.unsent is not None else []


@dataclass(frozen=True)
class Workload:
    """A set of conversations about to run: their specs, and how many run at once."""

    specs: tuple[ConversationSpec, ...]
    concurrency: int = 1

    @property
    def at_once(self) -> int:
        return max(1, min(self.concurrency, len(self.specs)))


def _takes_window(make: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(make).parameters
    except (TypeError, ValueError):
        return False
    return "window" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def resolve(ref: Ref) -> Callable[..., Any]:
    """A function given as itself or as "module:attribute" (the syntax of entry points)."""
    if callable(ref):
        return ref
    return EntryPoint(name="", value=ref, group="").load()


def check_hosted(p: Participant, provider: Provider, name: str) -> None:
    """A provider behind an HTTP API: it needs a base URL, and its key when the provider requires one."""
    if provider.base_url is None and not p.base_url:
        raise UnknownModelError(f"{p.name}: {p.model} needs a base URL (--base-url-a/--base-url-b or base_url)")
    if p.api_key_env is not None:  # the participant names its own variable: it must be set
        if not os.environ.get(p.api_key_env):
            raise UnknownModelError(f"{p.name}: {p.model}: api_key_env names {p.api_key_env}, which is not set")
        return
    if provider.key_required and not os.environ.get(provider.key_env or ""):
        raise UnknownModelError(f"{p.name}: {p.model} needs an API key: set {provider.key_env}")
