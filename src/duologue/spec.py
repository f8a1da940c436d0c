"""Participants and conversations, validated with pydantic; TOML loading.

A spec holds everything needed to repeat a run. It never holds secrets: API
keys are read from the environment by the backends at run time.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SpecError

DEFAULT_MODEL = "local/smollm2"
DEFAULT_SYSTEM = (
    "You are talking with another AI, not a human. Say what you think, ask what you "
    "wonder about, and keep each reply short."
)


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
    # Embedded engine: context length in tokens and CPU threads (None = all cores).
    context_length: int = Field(2048, ge=128)
    threads: int | None = Field(None, ge=1)
    show_reasoning: bool = False  # let the other side see this participant's reasoning
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


class Detection(BaseModel):
    """Thresholds of the loop detectors (DESIGN section 6); the defaults are the design's."""

    model_config = ConfigDict(extra="forbid")

    max_period: int = Field(8, ge=1)
    min_cycles: int = Field(3, ge=2)
    near_window: int = Field(6, ge=1)
    near_threshold: float = Field(0.5, gt=0, le=1)
    ngram: int = Field(5, ge=1)
    onset_run: int = Field(6, ge=1)
    onset_min: int = Field(5, ge=1)
    tail_share: float = Field(0.8, gt=0, le=1)

    @model_validator(mode="after")
    def _onset_window(self) -> "Detection":
        if self.onset_min > self.onset_run:
            raise ValueError("onset_min cannot exceed onset_run")
        return self


class ConversationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    participants: list[Participant] = Field(min_length=2)
    # The first speaker's opening message. A single space, as in the original transcripts.
    opener: str = " "
    max_messages: int = Field(20, ge=1)
    end_marker: str = "[END]"
    end_on: Literal["never", "any", "both"] = "never"
    seed: int | None = None  # default seed for participants that set none
    # What a detected loop does live: stop the run, record an event and go on, or nothing.
    on_loop: OnDetect = "stop"  # exact loops (stop reason `loop`)
    on_convergence: OnDetect = "flag"  # near loops (stop reason `convergence`)
    detection: Detection = Field(default_factory=Detection)

    @model_validator(mode="after")
    def _distinct_names(self) -> "ConversationSpec":
        names = [p.name for p in self.participants]
        if len(set(names)) != len(names):
            raise ValueError(f"participant names must differ, got {names}")
        return self

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.participants]

    def participant(self, name: str) -> Participant:
        for p in self.participants:
            if p.name == name:
                return p
        raise KeyError(name)


def default_spec() -> ConversationSpec:
    """The embedded default pair: two SmolLM2 participants."""
    return ConversationSpec(
        participants=[
            Participant(name="smollm2-a", seed=1),
            Participant(name="smollm2-b", seed=2),
        ]
    )


def describe_validation_error(err: ValidationError, source: str | None = None) -> str:
    """One line naming the first bad field and what is wrong with it."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "spec"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    prefix = f"{source}: " if source else ""
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{prefix}{where}: {msg}{more}"


def spec_from_dict(data: dict[str, Any], source: str | None = None) -> ConversationSpec:
    try:
        return ConversationSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(describe_validation_error(err, source)) from None


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
