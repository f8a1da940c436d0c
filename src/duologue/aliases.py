"""Model aliases: a short name for a model string and its connection settings.

`duologue alias set fast openrouter/qwen/qwen3-next --base-url … --extra provider.sort=throughput`
stores the alias in `aliases.toml` in the user's config folder (platformdirs' user config dir for
"duologue", or `DUOLOGUE_CONFIG_DIR` when set). An alias name has no "/", so wherever a model
string goes (`--a`/`--b`, a participant's `model` in TOML, an experiment's pool) a value without
one is looked up here. Resolution happens once, when a participant is validated (spec.py): the
stored spec records the provider/model, base URL, key variable and extra of the alias, and the
alias's name in `alias`. An alias holds the name of a key's environment variable, never a key.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import SpecError

if TYPE_CHECKING:
    from .spec import ConversationSpec

CONFIG_ENV = "DUOLOGUE_CONFIG_DIR"
FILE_NAME = "aliases.toml"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# The model an imported transcript's participants have (transcripts/markdown.py): never an alias.
RESERVED = ("imported",)


class Alias(BaseModel):
    """What an alias stands for: a model string and the participant settings that go with it."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=r"^[^/\s]+/\S")  # provider/model; an alias of an alias is not allowed
    base_url: str | None = None
    api_key_env: str | None = Field(None, min_length=1)
    extra: dict[str, Any] = Field(default_factory=dict)


def config_dir() -> Path:
    given = os.environ.get(CONFIG_ENV)
    if given:
        return Path(given)
    from platformdirs import user_config_dir

    return Path(user_config_dir("duologue", appauthor=False))


def aliases_path() -> Path:
    return config_dir() / FILE_NAME


def check_name(name: str) -> str:
    if name in RESERVED:
        raise SpecError(f"alias name {name!r} is reserved (the model of imported transcripts' participants)")
    if not NAME.match(name):
        raise SpecError(
            f"alias name {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit (no '/')"
        )
    return name


def load_aliases(path: Path | None = None) -> dict[str, Alias]:
    """Every stored alias by name; an absent file is none. A broken file is a one-line SpecError."""
    path = path or aliases_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: cannot read: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: invalid TOML: {err}") from None
    table = data.get("aliases", {})
    if not isinstance(table, dict):
        raise SpecError(f"{path}: [aliases] must be a table")
    found: dict[str, Alias] = {}
    for name, entry in table.items():
        try:
            found[check_name(name)] = Alias.model_validate(entry)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise SpecError(f"{path}: alias {name}: {where}: {first['msg']}") from None
    return found


def save_aliases(aliases: dict[str, Alias], path: Path | None = None) -> Path:
    import tomli_w

    path = path or aliases_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"aliases": {n: a.model_dump(exclude_defaults=True) for n, a in sorted(aliases.items())}}
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
    tmp.replace(path)  # never a half-written file
    return path


def set_alias(name: str, alias: Alias) -> Path:
    aliases = load_aliases()
    aliases[check_name(name)] = alias
    return save_aliases(aliases)


def remove_alias(name: str) -> Path:
    aliases = load_aliases()
    if name not in aliases:
        raise SpecError(f"no alias named {name!r} ({_known(aliases)})")
    del aliases[name]
    return save_aliases(aliases)


def _known(aliases: dict[str, Alias]) -> str:
    return "known: " + ", ".join(sorted(aliases)) if aliases else "none set yet: duologue alias set NAME MODEL"


def resolve_participant(data: dict[str, Any]) -> dict[str, Any]:
    """A participant's fields with an alias in `model` replaced by what it stands for.

    A model string has a "/"; a value without one is an alias name. The participant's own
    base_url and api_key_env win over the alias's, and its extra keys over the alias's extra.
    An unknown alias is left as it is (a stored spec must always load): the check before a run names
    it (registry.parse_model_string, with unknown_alias's words).
    """
    model = data.get("model")
    if not isinstance(model, str) or "/" in model or not model or model in RESERVED:
        return data
    try:
        aliases = load_aliases()
    except SpecError:
        return data  # the check before the run reads the file again and names the problem
    alias = aliases.get(model)
    if alias is None:
        return data  # checked before a run like any model string: registry.parse_model_string names it
    resolved = dict(data)
    resolved["model"] = alias.model
    resolved["alias"] = model
    for key in ("base_url", "api_key_env"):
        if resolved.get(key) is None and getattr(alias, key) is not None:
            resolved[key] = getattr(alias, key)
    if alias.extra:
        own = resolved.get("extra")
        resolved["extra"] = {**alias.extra, **own} if isinstance(own, dict) else dict(alias.extra)
    return resolved


def unknown_alias(model: str) -> str:
    """Why a value without a "/" that names no alias cannot be a participant's model."""
    try:
        known = _known(load_aliases())
    except SpecError as err:
        known = str(err)
    return f"{model!r} is neither a model string of the form provider/model (e.g. local/smollm2) nor an alias ({known})"


def parse_extra(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`--extra KEY=VALUE`: the value read as TOML when it parses (numbers, booleans, arrays,
    inline tables), else as text; a dotted KEY (`provider.sort=price`) makes nested tables."""
    extra: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(f"--extra {pair!r}: expected KEY=VALUE")
        try:
            value: Any = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        *parents, last = key.split(".")
        table = extra
        for part in parents:
            nxt = table.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise SpecError(f"--extra {pair!r}: {part} is already a value")
            table = nxt
        table[last] = value
    return extra


def resolve_aliases(spec: ConversationSpec) -> ConversationSpec:
    """The spec with every alias it names (a participant's, the summarizer's or a change's model) replaced by
    what the alias stands for now (resolve_participant). Done where a spec enters a run (the CLI, the runner),
    never when a spec is validated: a spec built in a test or a notebook reads no config folder."""
    if all("/" in model for model in spec.models()):
        return spec  # nothing names an alias: the aliases file is not read
    data = spec.model_dump(mode="json", by_alias=True)
    data["participants"] = [resolve_participant(p) for p in data["participants"]]
    summarizer = data["context"]["summarizer"]
    if summarizer.get("model"):
        data["context"]["summarizer"] = resolve_participant(summarizer)
    for change in data["changes"]:
        if change.get("model"):  # its model string only: base URL and extra stay with the participant's own
            change["model"] = resolve_participant({"model": change["model"]})["model"]
    return type(spec).model_validate(data)
