"""Conversation specs in TOML, on files hypothesis writes: valid ones load with every value kept;
a bad value gives one line naming the file and the field (a SpecError), never a pydantic report
or a traceback. Files are loaded as `duologue run -c FILE` loads them (cli.build_spec) and through
spec.load_conversation_spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duologue.cli import build_spec
from duologue.errors import DuologueError, SpecError
from duologue.spec import load_conversation_spec
from helpers import LEAKS

# TOML holds any string without lone surrogates.
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
names = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n↔"), min_size=1, max_size=12).filter(
    lambda n: n == n.strip()
)
unit = st.floats(0, 1, exclude_min=True)


@st.composite
def participants(draw, name):
    p = {"name": name, "model": draw(st.sampled_from(["local/smollm2", "openrouter/some/model", "ollama/llama3"]))}
    optional = {
        "system": text,
        "temperature": st.floats(0, 5),
        "top_p": unit,
        "max_tokens": st.integers(1, 10**6),
        "seed": st.integers(-(2**63), 2**63 - 1),
        "context_length": st.integers(128, 10**6),
        "threads": st.integers(1, 64),
        "show_reasoning": st.booleans(),
        "max_attempts": st.integers(1, 10),
        "timeout": st.floats(0.001, 1e6),
        "extra": st.dictionaries(names, st.integers(-(2**63), 2**63 - 1) | text, max_size=3),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        p[key] = draw(optional[key])
    return p


@st.composite
def valid_specs(draw):
    people = draw(st.lists(names, min_size=2, max_size=3, unique=True))
    spec = {"participants": [draw(participants(n)) for n in people]}
    optional = {
        "opener": text,
        "max_messages": st.integers(1, 10**4),
        "end_marker": text,
        "end_on": st.sampled_from(["never", "any", "both"]),
        "seed": st.integers(0, 2**32),
        "on_loop": st.sampled_from(["stop", "flag", "continue"]),
        "on_convergence": st.sampled_from(["stop", "flag", "continue"]),
        "turn_order": st.sampled_from(["round_robin", "random"]),
        "detection": st.fixed_dictionaries(
            {},
            optional={
                "max_period": st.integers(1, 20),
                "min_cycles": st.integers(2, 6),
                "near_window": st.integers(1, 10),
                "near_threshold": unit,
                "ngram": st.integers(1, 8),
                "tail_share": unit,
            },
        ),
        "context": st.fixed_dictionaries(
            {},
            optional={
                "strategy": st.sampled_from(["auto", "stop", "truncate", "summarize"]),
                "trim_to": st.floats(0.01, 0.99),
            },
        ),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True)):
        spec[key] = draw(optional[key])
    ats = draw(st.lists(st.integers(2, 100), unique=True, max_size=3))
    if ats:
        spec["injections"] = [{"at": at, "as": draw(names), "text": draw(text)} for at in ats]
    changes = draw(
        st.lists(
            st.fixed_dictionaries(
                {"at": st.integers(2, 100), "participant": st.sampled_from(people), "temperature": st.floats(0, 5)},
                optional={"model": st.just("local/smollm2"), "system": text},
            ),
            max_size=2,
        )
    )
    if changes:
        spec["changes"] = changes
    return spec


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> Path:
    """One file that each generated example overwrites (hypothesis runs examples one at a time)."""
    return tmp_path_factory.mktemp("specs") / "spec.toml"


def write(path: Path, data: dict) -> Path:
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_generated_valid_specs_load_with_every_value_kept(spec_path, data):
    path = write(spec_path, data)
    for spec in (load_conversation_spec(path), build_spec(path, {})):
        dumped = spec.model_dump(mode="json", by_alias=True)
        for key, value in data.items():
            if key in ("participants", "injections", "changes"):
                for given_item, loaded in zip(value, dumped[key], strict=True):
                    assert {k: loaded[k] for k in given_item} == given_item, key
            elif isinstance(value, dict):
                assert {k: dumped[key][k] for k in value} == value, key
            else:
                assert dumped[key] == value, key


# Values no field accepts, field by field: (where, value, what the message must name).
BAD_VALUES = [
    (("participants", 0, "temperature"), -0.5, "participants.0.temperature"),
    (("participants", 1, "temperature"), 5.5, "participants.1.temperature"),
    (("participants", 0, "temperature"), "hot", "participants.0.temperature"),
    (("participants", 0, "top_p"), 0, "participants.0.top_p"),
    (("participants", 1, "top_p"), 1.5, "participants.1.top_p"),
    (("participants", 0, "max_tokens"), 0, "participants.0.max_tokens"),
    (("participants", 0, "max_tokens"), 1.5, "participants.0.max_tokens"),
    (("participants", 0, "max_tokens"), [1, 2], "participants.0.max_tokens"),
    (("participants", 0, "context_length"), 64, "participants.0.context_length"),
    (("participants", 1, "threads"), 0, "participants.1.threads"),
    (("participants", 0, "name"), "", "participants.0.name"),
    (("participants", 0, "name"), " padded", "participants.0.name"),
    (("participants", 1, "name"), "two\nlines", "participants.1.name"),
    (("participants", 1, "name"), "a ↔ b", "participants.1.name"),
    (("participants", 0, "colour"), "red", "participants.0.colour"),
    (("participants", 0, "extra"), "not a table", "participants.0.extra"),
    (("max_messages",), 0, "max_messages"),
    (("max_messages",), "many", "max_messages"),
    (("opener",), 3, "opener"),
    (("end_on",), "sometimes", "end_on"),
    (("on_loop",), "explode", "on_loop"),
    (("turn_order",), "shuffle", "turn_order"),
    (("colour",), "red", "colour"),
    (("detection", "near_threshold"), 0, "detection.near_threshold"),
    (("detection", "min_cycles"), 1, "detection.min_cycles"),
    (("detection", "onset_min"), 9, "detection"),
    (("context", "strategy"), "drop", "context.strategy"),
    (("context", "trim_to"), 1.0, "context.trim_to"),
    (("injections",), [{"at": 1, "as": "x", "text": "hi"}], "injections.0.at"),
    (("injections",), [{"at": 3, "as": "x", "text": "a"}, {"at": 3, "as": "y", "text": "b"}], "two injections"),
    (("changes",), [{"at": 3, "participant": "nobody", "temperature": 1.0}], "nobody"),
    (("changes",), [{"at": 3, "participant": "alice"}], "changes.0"),
    (("participants",), [1, 2], "participants"),
    (("participants",), ["alice", "bob"], "participants"),
    (("participants",), "alice and bob", "participants"),
]


def set_at(data: dict, where: tuple, value) -> dict:
    target = data
    for key in where[:-1]:
        target = target.setdefault(key, {}) if isinstance(key, str) else target[key]
    target[where[-1]] = value
    return data


def assert_one_line_spec_error(err: DuologueError, path: Path) -> str:
    """One line per problem (most bad values are one problem), each naming the file."""
    message = str(err)
    assert isinstance(err, SpecError)
    assert err.problems == message.splitlines(), message
    for line in err.problems:
        assert line.startswith(f"{path}: ") and line.strip() == line, message
    for leak in LEAKS:
        assert leak not in message, message
    return message


def load_both(path: Path) -> list[str]:
    messages = []
    for load in (load_conversation_spec, lambda p: build_spec(p, {})):
        with pytest.raises(DuologueError) as caught:
            load(path)
        messages.append(assert_one_line_spec_error(caught.value, path))
    return messages


@pytest.mark.parametrize(
    ("where", "value", "named"), BAD_VALUES, ids=[".".join(map(str, b[0])) + "=" + repr(b[1]) for b in BAD_VALUES]
)
def test_a_bad_value_gives_one_line_naming_the_field(where, value, named, tmp_path):
    data = set_at({"participants": [{"name": "alice"}, {"name": "bob"}]}, where, value)
    path = write(tmp_path / "spec.toml", data)
    for message in load_both(path):
        assert named in message, message


def test_one_participant_is_an_error_in_a_file_but_the_cli_adds_a_partner(tmp_path):
    path = write(tmp_path / "spec.toml", {"participants": [{"name": "alone"}]})
    with pytest.raises(SpecError) as caught:
        load_conversation_spec(path)
    assert "participants" in assert_one_line_spec_error(caught.value, path)
    # The command line fills the second seat with the default model (the flags --b etc. describe it).
    assert [p.name for p in build_spec(path, {}).participants] == ["alone", "smollm2"]


FIELDS = [
    ("participants", 0, k)
    for k in (
        "name",
        "model",
        "system",
        "temperature",
        "top_p",
        "max_tokens",
        "seed",
        "base_url",
        "extra",
        "context_length",
        "threads",
        "show_reasoning",
        "max_attempts",
        "timeout",
        "retry_base_delay",
        "retry_max_delay",
    )
]
FIELDS += [
    (k,)
    for k in (
        "opener",
        "max_messages",
        "end_marker",
        "end_on",
        "seed",
        "on_loop",
        "on_convergence",
        "turn_order",
        "detection",
        "context",
        "injections",
        "changes",
        "participants",
    )
]
FIELDS += [("detection", k) for k in ("max_period", "near_threshold", "onset_run")]
FIELDS += [("context", k) for k in ("strategy", "trim_to", "summarizer")]

toml_values = st.recursive(
    st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), text, st.datetimes(), st.dates()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs(), st.sampled_from(FIELDS), toml_values)
def test_any_value_in_any_field_loads_or_gives_one_line(spec_path, data, where, value):
    path = write(spec_path, set_at(data, where, value))
    for load in (load_conversation_spec, lambda p: build_spec(p, {})):
        try:
            load(path)
        except DuologueError as err:
            assert_one_line_spec_error(err, path)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_any_text_loads_or_gives_one_line(spec_path, content):
    path = spec_path
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    for load in (load_conversation_spec, lambda p: build_spec(p, {})):
        try:
            load(path)
        except DuologueError as err:
            assert_one_line_spec_error(err, path)
