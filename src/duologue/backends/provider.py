"""What a provider is: a name, its connection preset, and the factory that makes its backends.

A provider owns the `provider/...` model strings of its name. duologue's own
are listed in builtin.py; other packages add theirs through the
`duologue.providers` entry-point group (see registry.py). Both are `Provider`s
given to `register_provider`. This module imports no backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import TYPE_CHECKING, Any

from ..errors import UnknownModelError

if TYPE_CHECKING:
    from ..spec import Participant
    from .base import Backend

# make(participant, provider, model name) -> Backend; check(participant, provider, model name) -> None,
# raising UnknownModelError for what cannot work (missing file, key or base URL).
MakeBackend = Callable[["Participant", "Provider", str], "Backend"]
CheckParticipant = Callable[["Participant", "Provider", str], None]
# unsent(participant, provider, model name) -> [(setting, why)]: the settings its backends do not send.
UnsentSettings = Callable[["Participant", "Provider", str], list[tuple[str, str]]]
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

    def factory(self) -> MakeBackend:
        return resolve(self.make)

    def checker(self) -> CheckParticipant | None:
        return resolve(self.check) if self.check is not None else None

    def unsent_settings(self, p: Participant, name: str) -> list[tuple[str, str]]:
        """(setting, why) for each of p's settings the provider will not be sent (the warnings before a run)."""
        return list(resolve(self.unsent)(p, self, name)) if self.unsent is not None else []


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
