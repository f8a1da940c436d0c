"""Participants and conversations, validated with pydantic; TOML loading.

A spec holds everything needed to repeat a run. It never holds secrets: API
keys are read from the environment by the backends at run time.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .analysis.convergence import ConvergenceParams
from .analysis.loops import LoopParams
from .analysis.themes import AttractorParams
from .errors import SpecError
from .spec_errors import problems

# The embedded engine's weights (backends/embedded/weights.py says what each means).
Weights = Literal["auto", "q4_1", "q8_0", "bf16"]

DEFAULT_MODEL = "local/smollm2"
DEFAULT_SYSTEM = (
    "You are talking with another AI, not a human. Say what you think, ask what you "
    "wonder about, and keep each reply short."
)


class Turn(BaseModel):
    """One turn of a participant's private preamble (`history`)."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str


class Participant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    model: str = DEFAULT_MODEL
    system: str = DEFAULT_SYSTEM
    temperature: float = Field(0.7, ge=0, le=5)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)
    seed: int | None = None
    # Where a hosted or self-served model lives; overrides the provider preset.
    base_url: str | None = None
    # Extra request parameters passed through to the provider (e.g. OpenRouter routing).
    extra: dict[str, Any] = Field(default_factory=dict)
    # Turns only this participant sees, after its system prompt and before the opener (a preamble of
    # earlier conversation, as Backrooms setups give each model); the other participant never sees them.
    history: list[Turn] = Field(default_factory=list)
    # The environment variable that holds this participant's API key, instead of the provider's own
    # (two endpoints with different keys). The key itself is read at run time and never stored.
    api_key_env: str | None = Field(None, min_length=1)
    # The context window in tokens. None: for the embedded engine, sized to the run (context.py,
    # run_context) up to the model's trained window; for hosted models unknown, so never checked
    # (the provider refuses what does not fit). CPU threads: embedded only.
    context_length: int | None = Field(None, ge=128)
    threads: int | None = Field(None, ge=1)
    # Embedded engine: which weights (the shipped Q4_1, a Q8_0 or BF16 copy of them, or auto: for the shipped
    # model the one the crash guard's probe timed fastest on this machine, a user's own GGUF as it is) and
    # lookup decoding (None: on with Q8_0 and BF16). A run's stored spec holds what was used (the embedded
    # provider's `prepare`).
    weights: Weights = "auto"
    lookup: bool | None = None
    show_reasoning: bool = False  # let the other side see this participant's reasoning
    # OpenAI-style reasoning models (o1, o3, o4, gpt-5 …): None decides by the model's name (the `openai`
    # provider's o-series and gpt-5 models); true or false says so for any OpenAI-compatible endpoint. A
    # reasoning model is sent max_completion_tokens instead of max_tokens and no temperature or top_p.
    reasoning: bool | None = None
    reasoning_effort: str | None = Field(None, min_length=1)  # sent as `reasoning_effort` ("low", "high", …)
    # The alias `model` named when the spec was made (aliases.py); model, base_url, api_key_env and extra
    # hold what it stood for then.
    alias: str | None = None
    # Hosted and self-served models: how often to try a request, how long a silent server is given
    # (seconds without a byte, before or during the stream), and the backoff between attempts.
    max_attempts: int = Field(5, ge=1)
    timeout: float = Field(60.0, gt=0)
    retry_base_delay: float = Field(1.0, ge=0)
    retry_max_delay: float = Field(30.0, ge=0)

    @field_validator("name")
    @classmethod
    def _single_line_name(cls, v: str) -> str:
        if "\n" in v or v != v.strip():
            raise ValueError("a name is one line without leading or trailing spaces")
        if "↔" in v:
            raise ValueError("a name cannot contain '↔'")
        return v


OnDetect = Literal["stop", "flag", "continue"]

# The built-in detectors' tables under [detection] and the spec field their `on` sets (ConversationSpec).
BUILTIN_DETECTORS = {
    "loop": "on_loop",
    "near_loop": "on_near_loop",
    "convergence": "on_convergence",
    "attractor": "on_attractor",
}
# The loop detectors' thresholds a [detection.loop] / [detection.near_loop] table may set: the exact loop's
# two, and every other LoopParams field for the near loop.
_EXACT_LOOP = ("max_period", "min_cycles")
LOOP_TABLES = {
    "loop": _EXACT_LOOP,
    "near_loop": tuple(f.name for f in fields(LoopParams) if f.name not in _EXACT_LOOP),
}


class Detection(BaseModel):
    """Thresholds of the loop detectors (docs/detectors.md has the definitions and defaults)."""

    # extra keys are the [detection.<name>] tables of detector plugins (duologue.detectors), checked before a
    # run against the detectors installed (detectors.check_detection), not here: a spec is data
    model_config = ConfigDict(extra="allow")

    # The loop detectors' thresholds: analysis.loops.LoopParams's fields, its defaults (the bounds are
    # declared here too, so a bad value is named by its field; `loop` builds the LoopParams).
    max_period: int = Field(LoopParams.max_period, ge=1)
    min_cycles: int = Field(LoopParams.min_cycles, ge=2)
    near_window: int = Field(LoopParams.near_window, ge=1)
    near_threshold: float = Field(LoopParams.near_threshold, gt=0, le=1)
    ngram: int = Field(LoopParams.ngram, ge=1)
    onset_run: int = Field(LoopParams.onset_run, ge=1)
    onset_min: int = Field(LoopParams.onset_min, ge=1)
    tail_share: float = Field(LoopParams.tail_share, gt=0, le=1)
    near_size_ratio: float = Field(LoopParams.near_size_ratio, ge=0, le=1)
    # The semantic detectors' thresholds ([detection.convergence], [detection.attractor]); their
    # fields and defaults are declared once, by the detectors (analysis/convergence.py, themes.py).
    convergence: ConvergenceParams = Field(default_factory=ConvergenceParams)
    attractor: AttractorParams = Field(default_factory=AttractorParams)

    @model_validator(mode="after")
    def _onset_window(self) -> Detection:
        if self.onset_min > self.onset_run:
            raise ValueError("onset_min cannot exceed onset_run")
        return self

    @property
    def loop(self) -> LoopParams:
        """The loop detectors' thresholds as the detectors take them."""
        return LoopParams(**{f.name: getattr(self, f.name) for f in fields(LoopParams)})


SUMMARY_PROMPT = (
    "You summarise conversations. Write a short summary of the conversation you are given: who said "
    "what, the topics, anything agreed or asked. Write only the summary; do not continue the conversation."
)


class Summarizer(Participant):
    """The model that writes the summary under the `summarize` context strategy."""

    name: str = Field("summarizer", min_length=1)
    # None: the first participant's model. A wider type than Participant.model (pydantic allows the
    # override); engine and api fill it in (model_copy) before the summarizer is used as a participant.
    model: str | None = None  # type: ignore[assignment]
    system: str = SUMMARY_PROMPT
    temperature: float = Field(0.3, ge=0, le=5)
    max_tokens: int = Field(128, ge=1)


class ContextPolicy(BaseModel):
    """What happens when the next request would not fit a participant's context window."""

    model_config = ConfigDict(extra="forbid")

    # auto (the default): as truncate, recorded as a `context_trimmed` event, so a run with default
    # settings never ends with `context_full` while its latest message still fits. stop: end the run
    # (`context_full`). truncate: leave the oldest messages after the system prompt, history and opener
    # out of the views. summarize: a summary of them stands in for them.
    strategy: Literal["auto", "stop", "truncate", "summarize"] = "auto"
    # The share of the window a view may fill right after trimming. Headroom means the views are
    # trimmed now and then rather than every turn, so the embedded engine keeps reusing its prefix.
    trim_to: float = Field(0.5, gt=0, lt=1)
    summarizer: Summarizer = Field(default_factory=Summarizer)

    @field_validator("summarizer", mode="before")
    @classmethod
    def _model_string(cls, v: Any) -> Any:
        return {"model": v} if isinstance(v, str) else v  # summarizer = "local/smollm2" for short


class Injection(BaseModel):
    """A message put into the conversation at message `at`, as a participant or an outside voice."""

    # "as" is a Python keyword: the field is as_, but TOML, JSON and the stored spec say "as".
    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    at: int = Field(ge=2)  # the opener is message 1
    as_: str = Field(alias="as", min_length=1)
    text: str

    @field_validator("as_")
    @classmethod
    def _single_line_voice(cls, v: str) -> str:
        return Participant._single_line_name(v)


class Change(BaseModel):
    """From message `at` on, a participant speaks with another model, system prompt or temperature."""

    model_config = ConfigDict(extra="forbid")

    at: int = Field(ge=2)
    participant: str
    model: str | None = None
    system: str | None = None
    temperature: float | None = Field(None, ge=0, le=5)

    @property
    def settings(self) -> dict[str, Any]:
        return {k: v for k in ("model", "system", "temperature") if (v := getattr(self, k)) is not None}

    @model_validator(mode="after")
    def _changes_something(self) -> Change:
        if not self.settings:
            raise ValueError("a change sets model, system or temperature")
        return self


class ConversationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    participants: list[Participant] = Field(min_length=2)
    # The first speaker's opening message. A single space, as in the original transcripts.
    opener: str = " "
    max_messages: int = Field(20, ge=1)
    # Stop (token_budget) once the generated messages' completion tokens reach this many (a message
    # whose count is unknown counts characters / 3.5); injected messages cost nothing.
    token_budget: int | None = Field(None, ge=1)
    # Stop (time_limit) when a message ends this many wall-clock seconds or more after the run, or its
    # latest resume, started (checked between messages: a message is never cut off).
    time_limit: float | None = Field(None, gt=0)
    # Stop (cost_limit) once the generated messages' cost reaches this many US dollars (each message's
    # cost as recorded: the provider's figure or the price data's; a fork counts only its own messages).
    # Every model must have a known price (the embedded one costs 0), or the run does not start.
    cost_limit: float | None = Field(None, gt=0)
    end_marker: str = "[END]"
    end_on: Literal["never", "any", "both"] = "never"
    seed: int | None = None  # default seed for participants that set none
    # What a detected loop does live: stop the run, record an event and go on, or nothing.
    on_loop: OnDetect = "stop"  # exact loops (stop reason `loop`)
    on_near_loop: OnDetect = "flag"  # near loops (stop reason `near_loop`)
    on_convergence: OnDetect = "flag"  # semantic convergence (stop reason `convergence`)
    on_attractor: OnDetect = "flag"  # entering an attractor theme (stop reason `attractor`)
    detection: Detection = Field(default_factory=Detection)
    # Who speaks next: each in turn, or a seeded random pick among all but the last speaker.
    turn_order: Literal["round_robin", "random"] = "round_robin"
    context: ContextPolicy = Field(default_factory=ContextPolicy)
    injections: list[Injection] = Field(default_factory=list)
    changes: list[Change] = Field(default_factory=list)
    # What the run's source says about it that duologue does not run by: an imported UniversalBackrooms
    # log's template, model keys and start time (importers/backrooms.py), or a user's own labels. `show`
    # prints it; a report over imported runs splits them by it (importers/corpus.py).
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _detector_tables(cls, data: Any) -> Any:
        """One way to configure every detector: `[detection.<name>]` with `on` and its thresholds, for the
        built-in ones too (`loop`, `near_loop`, `convergence`, `attractor`), as for a plugin's. The
        built-ins' older keys (on_loop … on_attractor, the loop thresholds in [detection]) mean the same
        and are what a stored spec holds; a table and an older key that disagree are an error."""
        if not isinstance(data, dict) or not isinstance(data.get("detection"), dict):
            return data
        data, detection = dict(data), dict(data["detection"])
        for name, field_name in BUILTIN_DETECTORS.items():
            table = detection.get(name)
            if not isinstance(table, dict):
                continue
            table = dict(table)
            if "on" in table:
                on = table.pop("on")
                if field_name in data and data[field_name] != on:
                    raise ValueError(f"detection.{name}.on and {field_name} disagree ({on!r}, {data[field_name]!r})")
                data[field_name] = on
            if name in LOOP_TABLES:  # its thresholds live at the top of [detection]
                for key, value in table.items():
                    if key not in LOOP_TABLES[name]:
                        raise ValueError(f"detection.{name}.{key}: unknown field")
                    if key in detection and detection[key] != value:
                        raise ValueError(f"detection.{name}.{key} and detection.{key} disagree")
                    detection[key] = value
                del detection[name]
            else:
                detection[name] = table
        data["detection"] = detection
        return data

    @model_validator(mode="after")
    def _distinct_names(self) -> ConversationSpec:
        names = [p.name for p in self.participants]
        if len(set(names)) != len(names):
            raise ValueError(f"participant names must differ, got {names}")
        return self

    @model_validator(mode="after")
    def _perturbations_fit(self) -> ConversationSpec:
        # One message per number: two injections at the same `at` would leave which one lands
        # where (and what a resumed run still owes) up to the order of the list.
        seen: set[int] = set()
        for inj in self.injections:
            if inj.at in seen:
                raise ValueError(f"two injections at message {inj.at}; give each its own message number")
            seen.add(inj.at)
        for ch in self.changes:
            if ch.participant not in self.names:
                raise ValueError(f"change at message {ch.at} names '{ch.participant}', which is not a participant")
        return self

    def participants_at(self, index: int) -> list[Participant]:
        """The participants as they speak at message `index`, with every change due by then applied."""
        current = {p.name: p for p in self.participants}
        for ch in sorted(self.changes, key=lambda c: c.at):  # stable: same `at` applies in file order
            if ch.at <= index:
                current[ch.participant] = current[ch.participant].model_copy(update=ch.settings)
        return [current[p.name] for p in self.participants]

    def injection_at(self, index: int) -> Injection | None:
        return next((inj for inj in self.injections if inj.at == index), None)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.participants]

    def models(self) -> set[str]:
        """Every model the conversation may use: its participants', its changes', its summarizer's."""
        models = {p.model for p in self.participants}
        models.update(ch.model for ch in self.changes if ch.model is not None)
        if self.context.strategy == "summarize":
            models.add(self.context.summarizer.model or self.participants[0].model)
        return models

    def participant(self, name: str) -> Participant:
        for p in self.participants:
            if p.name == name:
                return p
        raise KeyError(name)


def parse_participant_option(text: str) -> dict[str, str]:
    """`name=carol,model=local/smollm2,system="You are Carol, a sceptic."` -> a participant's fields.

    Comma-separated KEY=VALUE pairs; a value with commas goes in double quotes
    (a backslash escapes a quote inside them). The values stay text: validating
    the spec turns them into numbers where a number is wanted.
    """
    fields: dict[str, str] = {}
    key, value, quoted, escaped, in_value = "", "", False, False, False

    def close() -> None:
        nonlocal key, value, in_value
        if not key.strip() and not in_value:
            return
        if not in_value or not key.strip():
            raise SpecError(f"--participant {text!r}: expected KEY=VALUE pairs separated by commas")
        name = key.strip()
        if name not in Participant.model_fields:
            known = ", ".join(Participant.model_fields)
            raise SpecError(f"--participant {text!r}: unknown field '{name}' (known: {known})")
        if name in fields:
            raise SpecError(f"--participant {text!r}: '{name}' given twice")
        fields[name] = value
        key, value, in_value = "", "", False

    for ch in text:
        if quoted:
            if escaped:
                value, escaped = value + ch, False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            else:
                value += ch
        elif in_value:
            if ch == '"' and not value.strip():
                value, quoted = "", True
            elif ch == ",":
                close()
            else:
                value += ch
        elif ch == "=":
            in_value = True
        elif ch == ",":
            close()
        else:
            key += ch
    if quoted:
        raise SpecError(f"--participant {text!r}: a quote is not closed")
    close()
    return fields


def default_spec() -> ConversationSpec:
    """The embedded default pair: two SmolLM2 participants, unseeded: each run gets fresh random seeds,
    recorded in its stored spec (conversations.complete_seeds), as `duologue run` does. Set `seed` (or each
    participant's) to repeat a run."""
    return ConversationSpec(
        participants=[
            Participant(name="smollm2-a"),
            Participant(name="smollm2-b"),
        ]
    )


def describe_validation_error(err: ValidationError, source: str | None = None) -> str:
    """Every problem in plain words, one line each (spec_errors.py)."""
    return "\n".join(problems(err, source))


def spec_from_dict(data: dict[str, Any], source: str | None = None) -> ConversationSpec:
    try:
        return ConversationSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(*problems(err, source)) from None


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: cannot read: {err}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: invalid TOML: {err}") from None


def load_conversation_spec(path: str | Path) -> ConversationSpec:
    """Read a conversation TOML file: top-level settings and [[participants]] tables."""
    return spec_from_dict(load_toml(path), source=str(path))
