"""Which of a participant's settings its provider will not be sent, and why: the warnings before a run.

Each built-in provider names a function `unsent(participant, provider, model name)` returning
`(setting, why)` pairs (a plugin's provider may name its own; see provider.py). The settings are
the participant's field names, and `extra.<key>` for an extra request parameter that is dropped.
`unsent_warnings` turns those the user asked for (set in the spec or on the command line, not
left at a default) into one line each:

    warning: ada: temperature is not sent to openai (reasoning models refuse it)

This module imports no SDK: `duologue run` prints the warnings before any backend is made.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..spec import ConversationSpec, Participant
    from .provider import Provider

Unsent = tuple[str, str]  # (setting, why it is not sent)

# OpenAI's reasoning models, by name: the o-series (o1, o3-mini, o4-mini, …) and gpt-5 (gpt-5, gpt-5-mini,
# gpt-5.1, …) but not the gpt-5 chat models, which take temperature as the older models do.
REASONING_NAME = re.compile(r"^(o[1-9]\d*|gpt-5)([-.]|$)", re.IGNORECASE)

# What the embedded engine reads from `extra` (its sampler chain, embedded/sampling.py).
EMBEDDED_EXTRA = ("top_k", "min_p", "repeat_penalty")

# Anthropic: the API version the SDK speaks (2026-10-21) refuses temperature, top_p and top_k; the
# previous one (2023-06-01), chosen with extra.anthropic_version, still takes temperature.
ANTHROPIC_LEGACY_VERSION = "2023-06-01"


def is_reasoning_model(p: Participant, provider: Provider, name: str) -> bool:
    """Whether an OpenAI-compatible participant is to be asked as a reasoning model."""
    if p.reasoning is not None:
        return p.reasoning
    base = name.rsplit("/", 1)[-1]
    return provider.name == "openai" and bool(REASONING_NAME.match(base)) and "-chat" not in base


def openai_unsent(p: Participant, provider: Provider, name: str) -> list[Unsent]:
    if not is_reasoning_model(p, provider, name):
        return []
    why = "reasoning models refuse it"
    return [("temperature", why), ("top_p", why)]


def anthropic_legacy(p: Participant) -> bool:
    return p.extra.get("anthropic_version") == ANTHROPIC_LEGACY_VERSION


def anthropic_unsent(p: Participant, provider: Provider, name: str) -> list[Unsent]:
    unsent = [("seed", "the Messages API has no seed")]
    if anthropic_legacy(p):
        unsent.append(("top_p", "newer models refuse it beside the temperature, which is sent"))
    else:
        why = f"its current API version refuses it; extra.anthropic_version = '{ANTHROPIC_LEGACY_VERSION}' sends it"
        unsent += [("temperature", why), ("top_p", "its current API version refuses it")]
    if p.reasoning_effort is not None:
        unsent.append(("reasoning_effort", "Anthropic takes extra.thinking instead"))
    return unsent


def embedded_unsent(p: Participant, provider: Provider, name: str) -> list[Unsent]:
    unsent = []
    if p.reasoning_effort is not None:
        unsent.append(("reasoning_effort", "the embedded engine has no reasoning setting"))
    known = ", ".join(EMBEDDED_EXTRA)
    for key in p.extra:
        if key not in EMBEDDED_EXTRA:
            unsent.append((f"extra.{key}", f"the embedded engine reads only {known} from extra"))
    return unsent


def asked_for(p: Participant, spec_seed: int | None = None, also: Iterable[str] = ()) -> set[str]:
    """The settings the user set (not left at their defaults): the fields given, every extra key,
    the seed when the conversation gives one to all, and `also` (what an experiment sweeps)."""
    asked = set(p.model_fields_set) | {f"extra.{k}" for k in p.extra} | set(also)
    if spec_seed is not None:
        asked.add("seed")
    return asked


def unsent_lines(p: Participant, asked: set[str]) -> list[str]:
    """One warning line for each setting in `asked` that p's provider will not be sent."""
    from ..errors import DuologueError
    from .registry import parse_model_string

    try:
        provider, name = parse_model_string(p.model)
    except DuologueError:
        return []  # the check before the run names it
    return [
        f"warning: {p.name}: {setting} is not sent to {provider.name} ({why})"
        for setting, why in provider.unsent_settings(p, name)
        if setting in asked
    ]


def unsent_warnings(spec: ConversationSpec) -> list[str]:
    """The warnings for a conversation's participants (and any model a change gives them)."""
    lines: list[str] = []
    for p in spec.participants:
        lines += unsent_lines(p, asked_for(p, spec.seed))
        for ch in spec.changes:
            if ch.participant == p.name and (ch.model is not None or ch.temperature is not None):
                changed = p.model_copy(update=ch.settings)
                asked = asked_for(p, spec.seed, ["temperature"] if ch.temperature is not None else [])
                lines += [line for line in unsent_lines(changed, asked) if line not in lines]
    return lines


def pool_warnings(participants: Iterable[Participant], *, sweeps: Iterable[str] = (), seed: bool = True) -> list[str]:
    """The warnings for an experiment's pool: what each participant sets, and what the experiment
    sweeps for all of them (`sweeps`, e.g. temperature); an experiment seeds every conversation."""
    sweeps = list(sweeps)
    lines: list[str] = []
    for p in participants:
        lines += unsent_lines(p, asked_for(p, 0 if seed else None, sweeps))
    return lines


def check_anthropic(p: Participant, provider: Provider, name: str) -> None:
    """check_hosted, and a temperature the API takes when it is to be sent (0..1)."""
    from ..errors import UnknownModelError
    from .provider import check_hosted

    check_hosted(p, provider, name)
    version = p.extra.get("anthropic_version")
    if version is not None and not isinstance(version, str):
        raise UnknownModelError(f"{p.name}: extra.anthropic_version must be text, e.g. '{ANTHROPIC_LEGACY_VERSION}'")
    if anthropic_legacy(p) and p.temperature > 1:
        raise UnknownModelError(f"{p.name}: Anthropic takes a temperature from 0 to 1, got {p.temperature}")
