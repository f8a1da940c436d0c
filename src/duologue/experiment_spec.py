"""Experiments as files: a conversation template, a pool of participants, pairings and a [vary] table.

An experiment file holds at its top level every field a conversation file
holds (opener, max_messages, context, injections, detection, …), which every
conversation of the experiment starts from; the experiment's own keys (name,
description, participants — the pool —, pairings, repeats, base_seed,
concurrency); and a `[vary]` table whose keys are field paths, each with its
values. The matrix is pairings × every [vary] key's values × repeats.

A path is a conversation field (`opener`, `max_messages`, `context.strategy`,
`injections`, …), a participant field set for every participant of the pairing
(`temperature`, `system`, `model`, …) or `participants.NAME.FIELD` for one
participant of the pool (NAME may also be `a` or `b`: the pairing's first or
second speaker, when no pool participant has that name). A key's values are a
list (each value stands for itself in reports) or a table of named values
(`system = {plain = "…", poet = "…"}`: reports say "plain" and "poet").

Files without [vary] are the older kind: `openers`, `system_prompts` and
`temperatures` lists. They plan the same cells, keys and seeds as before, so an
experiment stored by an older duologue resumes where it stopped.

Every conversation's spec is built from the template's data by
`spec.spec_from_dict`, the function `run` builds a TOML file's spec with.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .backends.registry import parse_model_string
from .errors import SpecError
from .spec import ConversationSpec, Participant, load_toml, spec_from_dict
from .spec_errors import problems, shown
from .store import cell_key

# The experiment's own keys; every other top-level key is a conversation field (the template).
EXPERIMENT_KEYS = (
    "name",
    "description",
    "participants",
    "pairings",
    "repeats",
    "base_seed",
    "concurrency",
    "vary",
    "cost_limit",
)
# The older way to vary settings (files without [vary]).
LEGACY_KEYS = ("openers", "system_prompts", "temperatures")
# Set per cell by the plan: never in a template or a [vary] path.
PLANNED = ("participants", "seed")
# (cost_limit at an experiment's top level is the experiment's: a total across its conversations.)
CONVERSATION_FIELDS = [f for f in ConversationSpec.model_fields if f not in PLANNED and f not in EXPERIMENT_KEYS]
PARTICIPANT_FIELDS = [f for f in Participant.model_fields if f not in ("name", "seed")]
SPEAKERS = {"a": 0, "b": 1}


@dataclass(frozen=True)
class Axis:
    """One varied path: the labels cells record and the values conversations get (None: left as is)."""

    path: str
    labels: list[Any]
    values: list[Any]
    by_index: bool = False  # the labels are positions in `values` (the older files' openers)

    def shown(self, label: Any) -> Any:
        """What a report or table shows for a cell's label: a number or text as it is, the text of an
        opener given by position, a list or table (injections) as compact JSON."""
        if self.by_index and isinstance(label, int) and 0 <= label < len(self.values):
            label = self.values[label]
        if isinstance(label, list | dict):
            return json.dumps(label, ensure_ascii=False, separators=(", ", ": "))
        return label


def _unknown(path: str) -> str:
    return (
        f"vary.{path}: unknown setting; vary a conversation field ({', '.join(CONVERSATION_FIELDS)}), "
        f"a field of every participant ({', '.join(PARTICIPANT_FIELDS)}) or participants.NAME.FIELD"
    )


def _walk(model: Any, segs: list[str], path: str) -> Literal["leaf", "branch"]:
    """Whether `segs` under `model` (a pydantic model or a dataclass) name one setting or a table of them."""
    if dataclasses.is_dataclass(model):
        names = [f.name for f in dataclasses.fields(model)]
        annotation: Any = None
    else:
        names = list(model.model_fields)
    if segs[0] not in names:
        if not dataclasses.is_dataclass(model) and model.model_config.get("extra") == "allow":
            return "leaf" if len(segs) > 1 else "branch"  # a plugin detector's table
        raise ValueError(f"vary.{path}: unknown field '{segs[0]}' (known: {', '.join(names)})")
    if not dataclasses.is_dataclass(model):
        annotation = model.model_fields[segs[0]].annotation
    rest = segs[1:]
    table = isinstance(annotation, type) and (issubclass(annotation, BaseModel) or dataclasses.is_dataclass(annotation))
    if table:
        return _walk(annotation, rest, path) if rest else "branch"
    if typing.get_origin(annotation) is dict:
        return "leaf" if rest else "branch"
    if rest:
        raise ValueError(f"vary.{path}: '{segs[0]}' is one value, not a table")
    return "leaf"


def path_kind(path: str, pool: list[str]) -> Literal["leaf", "branch"]:
    """Check a [vary] path; "branch" when it names a table whose fields are the paths."""
    segs = path.split(".")
    head = segs[0]
    if head == "seed":
        raise ValueError("vary.seed: seeds come from base_seed and each cell; use repeats for more seeds")
    if head == "participants":
        if len(segs) == 1:
            return "branch"
        who = segs[1]
        if who not in pool and who not in SPEAKERS:
            raise ValueError(f"vary.{path}: no participant '{who}' in the pool ({', '.join(pool)}; or a, b)")
        if len(segs) == 2:
            return "branch"
        if segs[2] in ("name", "seed"):
            raise ValueError(f"vary.{path}: a participant's {segs[2]} is set by the plan, not varied")
        return _walk(Participant, segs[2:], path)
    if head in CONVERSATION_FIELDS:
        return _walk(ConversationSpec, segs, path)
    if head in PARTICIPANT_FIELDS:
        return _walk(Participant, segs, path)
    raise ValueError(_unknown(path))


def flatten_vary(vary: dict[str, Any], pool: list[str], prefix: str = "") -> dict[str, Any]:
    """TOML's dotted keys make nested tables (`context.strategy = [...]` is {"context": {"strategy": [...]}}):
    back to one dotted path per varied setting, each checked."""
    out: dict[str, Any] = {}
    for key, values in vary.items():
        path = f"{prefix}{key}"
        if path_kind(path, pool) == "branch":
            if not isinstance(values, dict):
                raise ValueError(f"vary.{path}: a table of settings; vary one of its fields (vary.{path}.FIELD)")
            out.update(flatten_vary(values, pool, f"{path}."))
            continue
        if not isinstance(values, list | dict) or not values:
            raise ValueError(f"vary.{path}: give a list of values or a table of named values, got {shown(values)}")
        listed = list(values.values()) if isinstance(values, dict) else values
        if not isinstance(values, dict) and len({json.dumps(v, sort_keys=True) for v in listed}) < len(listed):
            raise ValueError(f"vary.{path}: a value is listed twice; use repeats for more conversations of a cell")
        out[path] = values
    return out


class ExperimentSpec(BaseModel):
    """A matrix of conversations: pairings × the values of every varied path × repeats."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    participants: list[Participant] = Field(min_length=1)  # the pool
    # "all": every unordered pair of distinct participants; "all_with_self": and each with itself;
    # or an explicit list of [first speaker, second speaker] names.
    pairings: Literal["all", "all_with_self"] | list[tuple[str, str]] = "all"
    repeats: int = Field(1, ge=1)
    base_seed: int = 0
    # Conversations in flight per provider ("local", "openrouter", …); "default" for the rest.
    concurrency: dict[str, int] = Field(default_factory=dict)
    # path -> its values (a list) or named values (a table). None: an older file (openers, …).
    vary: dict[str, Any] | None = None
    # USD: the batch stops every conversation (stop reason cost_limit) once its conversations together have
    # spent this much, and starts no more; a higher limit (re-running the batch) resumes them. Not part of
    # the record: raising it changes no conversation.
    cost_limit: float | None = Field(None, gt=0)
    # The older files' lists (only when vary is None).
    openers: list[str] | None = Field(None, min_length=1)
    system_prompts: dict[str, str] | None = None
    temperatures: list[float] | None = None
    # Every conversation field given at the top level of the file: the conversations' template.
    conversation: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "conversation" in data:
            raise ValueError("conversation: unknown field (give the conversation's fields at the top level)")
        out = {k: v for k, v in data.items() if k in EXPERIMENT_KEYS or k in LEGACY_KEYS}
        template = {k: v for k, v in data.items() if k in CONVERSATION_FIELDS}
        # Anything else stays at the top, where it is an unknown field.
        out.update({k: v for k, v in data.items() if k not in out and k not in template})
        if "seed" in data:
            raise ValueError("seed: an experiment's seeds come from base_seed and each cell; give base_seed instead")
        old = [k for k in LEGACY_KEYS if k in data]
        if data.get("vary") is not None and old:
            raise ValueError(
                f"{old[0]} is the older way to vary a setting and does not mix with [vary]: under [vary], write "
                "opener = [...] for openers, system = {...} for system_prompts, temperature = [...] for temperatures"
            )
        if data.get("vary") is None:  # an older file (or one that varies nothing)
            if "openers" in data and "opener" in template:
                raise ValueError("give openers (a list, one conversation each) or opener (one text), not both")
            if "opener" in template:
                out["openers"] = [template.pop("opener")]
        out["conversation"] = template
        return out

    @field_validator("pairings", mode="before")
    @classmethod
    def _pairings_shape(cls, v: Any) -> Any:
        # Checked here, not left to the union, so a bad value is one problem in plain words.
        if isinstance(v, str) and v not in ("all", "all_with_self"):
            raise ValueError(f"expected 'all', 'all_with_self' or a list of [first, second] name pairs, got {v!r}")
        if isinstance(v, list):
            for pair in v:
                if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(n, str) for n in pair)):
                    raise ValueError(f"each pairing is a list of two participant names, got {pair!r}")
        return v

    @field_validator("temperatures")
    @classmethod
    def _temperatures_in_range(cls, v: list[float] | None) -> list[float] | None:
        for t in v or ():
            if not 0 <= t <= 5:
                raise ValueError(f"temperature {t} is outside 0..5")
        return v

    @field_validator("concurrency")
    @classmethod
    def _positive_limits(cls, v: dict[str, int]) -> dict[str, int]:
        for k, n in v.items():
            if n < 1:
                raise ValueError(f"concurrency for {k} must be at least 1")
        return v

    @model_validator(mode="after")
    def _known_pairings(self) -> ExperimentSpec:
        names = [p.name for p in self.participants]
        if len(set(names)) != len(names):
            raise ValueError(f"participant names must differ, got {names}")
        if isinstance(self.pairings, list):
            for a, b in self.pairings:
                for n in (a, b):
                    if n not in names:
                        raise ValueError(f"pairing [{a}, {b}] names '{n}', which is not a participant")
        elif self.pairings == "all" and len(names) < 2:
            raise ValueError("pairings = 'all' needs two participants; use 'all_with_self' for self-talk")
        if self.vary is not None:
            self.vary = flatten_vary(self.vary, names)
        return self

    @property
    def legacy(self) -> bool:
        """An older file: openers, system_prompts and temperatures instead of [vary]."""
        return self.vary is None

    def axes(self) -> list[Axis]:
        """The varied paths in the order of the matrix (pairings first, repeats last)."""
        if self.vary is None:  # the older cells: opener by position, system by name, None when not varied
            openers = self.openers or [" "]
            systems = self.system_prompts or {}
            temps: list[Any] = list(self.temperatures or []) or [None]
            return [
                Axis("opener", list(range(len(openers))), list(openers), by_index=True),
                Axis("system", list(systems) or [None], list(systems.values()) or [None]),
                Axis("temperature", temps, temps),
            ]
        return [
            Axis(path, list(v), list(v.values())) if isinstance(v, dict) else Axis(path, list(v), list(v))
            for path, v in self.vary.items()
        ]

    @property
    def settings(self) -> list[str]:
        """What reports split the runs by: the pairing, then every varied path."""
        return ["pairing", *(a.path for a in self.axes())]

    def shown_cell(self, cell: dict[str, Any]) -> dict[str, Any]:
        """A stored cell with each varied value as reports show it (openers as text)."""
        axes = {a.path: a for a in self.axes()}
        return {k: axes[k].shown(v) if k in axes else v for k, v in cell.items()}

    def record(self) -> dict[str, Any]:
        """The experiment as stored with it: its file's shape, every default filled in, so two files that
        plan the same conversations have the same record (and an older duologue's record reads back)."""
        data: dict[str, Any] = self.model_dump(
            mode="json", exclude={"conversation", "vary", "cost_limit", *LEGACY_KEYS}
        )
        a, b = pairings(self)[0]
        names = _side_names(a, b)
        spec = spec_from_dict({**copy.deepcopy(self.conversation), "participants": [{"name": n} for n in names]})
        template = spec.model_dump(mode="json", exclude=set(PLANNED))
        if self.vary is None:
            template.pop("opener")
            data.update(
                openers=self.openers or [" "],
                system_prompts=self.system_prompts or {},
                temperatures=self.temperatures or [],
            )
        else:
            data["vary"] = self.vary
        return {**template, **data}


def _side_names(a: Participant, b: Participant) -> tuple[str, str]:
    # A participant talking to itself needs two names to tell its sides apart.
    return (f"{a.name}-1", f"{b.name}-2") if a.name == b.name else (a.name, b.name)


def pairings(exp: ExperimentSpec) -> list[tuple[Participant, Participant]]:
    pool = {p.name: p for p in exp.participants}
    if exp.pairings == "all":
        pairs = list(itertools.combinations(pool, 2))
    elif exp.pairings == "all_with_self":
        pairs = list(itertools.combinations_with_replacement(pool, 2))
    else:
        pairs = [(a, b) for a, b in exp.pairings]
    return [(pool[a], pool[b]) for a, b in pairs]


def derive_seed(base_seed: int, key: str) -> int:
    """A stable seed per cell: the same plan gives the same seeds on every machine and run."""
    digest = hashlib.sha256(f"{base_seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1)


def _set(data: dict[str, Any], path: list[str], value: Any) -> None:
    for seg in path[:-1]:
        inner = data.get(seg)
        data[seg] = inner = dict(inner) if isinstance(inner, dict) else {}
        data = inner
    data[path[-1]] = copy.deepcopy(value)


def conversation_data(
    exp: ExperimentSpec, a: Participant, b: Participant, values: dict[str, Any], seed: int | None
) -> dict[str, Any]:
    """A conversation's settings as a conversation file would give them: the template, the pairing's
    participants, and each varied path's value (None: left as is); a conversation-wide path first, then
    one for every participant, then one for a single participant."""
    data = copy.deepcopy(exp.conversation)
    if exp.vary is None:
        data["opener"] = (exp.openers or [" "])[0]
    parts: list[dict[str, Any]] = []
    for i, (p, name) in enumerate(zip((a, b), _side_names(a, b), strict=True)):
        part = p.model_dump(exclude={"name", "seed"})
        part["name"] = name
        if seed is not None:
            part["seed"] = seed + i
        parts.append(part)
    pool = {p.name for p in exp.participants}
    for path in sorted(values, key=_application_order):
        value = values[path]
        if value is None:
            continue
        segs = path.split(".")
        if segs[0] == "participants":
            who = segs[1]
            if who in pool:
                targets = [part for part, p in zip(parts, (a, b), strict=True) if p.name == who]
            else:
                targets = [parts[SPEAKERS[who]]]
            for part in targets:
                _set(part, segs[2:], value)
        elif segs[0] in CONVERSATION_FIELDS:
            _set(data, segs, value)
        else:
            for part in parts:
                _set(part, segs, value)
    data["participants"] = parts
    if seed is not None:
        data["seed"] = seed
    return data


def _application_order(path: str) -> tuple[bool, bool]:
    head = path.split(".")[0]
    return head == "participants", head in PARTICIPANT_FIELDS


@dataclass(frozen=True)
class PlannedConversation:
    cell: dict[str, Any]  # pairing, each varied path's label, repeat
    spec: ConversationSpec

    @property
    def key(self) -> str:
        return cell_key(self.cell)

    @property
    def providers(self) -> list[str]:
        return sorted({parse_model_string(p.model)[0].name for p in self.spec.participants})


def plan_experiment(exp: ExperimentSpec, source: str | None = None) -> list[PlannedConversation]:
    """One conversation per pairing, combination of varied values and repeat, each with its seed."""
    axes = exp.axes()
    choices: list[list[tuple[Any, Any]]] = [list(zip(ax.labels, ax.values, strict=True)) for ax in axes]
    plans = []
    for (a, b), chosen, repeat in itertools.product(
        pairings(exp), itertools.product(*choices), range(1, exp.repeats + 1)
    ):
        cell: dict[str, Any] = {"pairing": f"{a.name} ↔ {b.name}"}
        cell.update({ax.path: label for ax, (label, _) in zip(axes, chosen, strict=True)})
        cell["repeat"] = repeat
        seed = derive_seed(exp.base_seed, cell_key(cell))
        values = {ax.path: value for ax, (_, value) in zip(axes, chosen, strict=True)}
        where = f"{source or exp.name} (cell {cell_key(exp.shown_cell(cell))})"
        plans.append(PlannedConversation(cell, spec_from_dict(conversation_data(exp, a, b, values, seed), where)))
    return plans


def check_experiment(exp: ExperimentSpec, source: str | None = None) -> None:
    """Every conversation the experiment plans is valid: the template first, then each varied value on it,
    then every cell; each problem in duologue's words, naming where it is."""
    source = source or exp.name
    a, b = pairings(exp)[0]
    found: list[str] = []  # every problem, not only the first

    def check(data: dict[str, Any], where: str) -> None:
        try:
            spec_from_dict(data, where)
        except SpecError as err:
            found.extend(err.problems)

    check(conversation_data(exp, a, b, {}, None), source)
    for ax in exp.axes():
        for label, value in zip(ax.labels, ax.values, strict=True):
            check(
                conversation_data(exp, a, b, {ax.path: value}, None),
                f"{source}: vary.{ax.path} = {shown(ax.shown(label))}",
            )
    if found:
        raise SpecError(*found)
    plan_experiment(exp, source)


def experiment_from_dict(data: dict[str, Any], source: str | None = None) -> ExperimentSpec:
    try:
        exp = ExperimentSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(*_every_problem(data, err, source)) from None
    check_experiment(exp, source)
    return exp


def _every_problem(data: dict[str, Any], err: ValidationError, source: str | None) -> list[str]:
    """The file's problems, every one: pydantic stops before the whole-file rules (pairings) when a field is
    wrong, and the template and [vary] values are checked on a valid experiment only. So the file is checked
    again with the fields in error left out (the whole-file rules), then with a pairing that always holds (the
    template and each varied value)."""
    found = problems(err, source)
    bad = {str(e["loc"][0]) for e in err.errors() if e.get("loc")}
    rest = {k: v for k, v in data.items() if k not in bad or k in ("name", "participants")}
    for attempt in (rest, {**rest, "pairings": "all_with_self"}):
        try:
            check_experiment(ExperimentSpec.model_validate(attempt), source)
        except ValidationError as more:
            found += [p for p in problems(more, source) if p not in found]
        except SpecError as more:
            found += [p for p in more.problems if p not in found]
    return found


def load_experiment_spec(path: str | Path) -> ExperimentSpec:
    """Read an experiment TOML file; the name defaults to the file's stem."""
    data = load_toml(path)
    data.setdefault("name", Path(path).stem)
    return experiment_from_dict(data, str(path))


def stored_experiment(spec: dict[str, Any]) -> ExperimentSpec | None:
    """The experiment a stored record describes; None when today's duologue cannot read it."""
    try:
        return ExperimentSpec.model_validate(spec)
    except ValidationError:
        return None
