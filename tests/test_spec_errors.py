"""Validation errors in duologue's own words: every problem, one self-contained line each."""

from __future__ import annotations

import pytest

from duologue.errors import SpecError
from duologue.experiment_spec import load_experiment_spec
from duologue.spec import spec_from_dict
from helpers import LEAKS, run_cli

PAIR = [{"name": "a"}, {"name": "b"}]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        # missing field
        ({"participants": PAIR, "injections": [{"at": 3, "as": "a"}]}, "injections.0.text: required, but not given"),
        # extra field
        ({"participants": PAIR, "colour": "red"}, "colour: unknown field"),
        # too short a list, an empty string
        ({"participants": [{"name": "a"}]}, "participants: needs at least 2 entries, got 1"),
        ({"participants": [{"name": ""}, {"name": "b"}]}, "participants.0.name: cannot be empty"),
        # wrong type
        ({"participants": PAIR, "max_messages": "many"}, 'max_messages: expected a whole number, got "many"'),
        ({"participants": PAIR, "max_messages": 2.5}, "max_messages: expected a whole number, got 2.5"),
        ({"participants": [{"name": "a", "temperature": "hot"}, {"name": "b"}]}, 'expected a number, got "hot"'),
        ({"participants": "a and b"}, 'participants: expected a list, got "a and b"'),
        ({"participants": PAIR, "context": {"summarizer": 5}}, "context.summarizer: expected a table, got 5"),
        ({"participants": PAIR, "on_loop": "no"}, "on_loop: expected 'stop', 'flag' or 'continue', got \"no\""),
        ({"participants": [{"name": "a", "show_reasoning": "maybe"}, {"name": "b"}]}, "expected true or false"),
        # out of range
        ({"participants": PAIR, "max_messages": 0}, "max_messages: must be at least 1, got 0"),
        ({"participants": PAIR, "context": {"trim_to": 1}}, "context.trim_to: must be less than 1, got 1"),
        ({"participants": [{"name": "a", "top_p": 0}, {"name": "b"}]}, "top_p: must be more than 0, got 0"),
        # value errors: duologue's own sentence, without pydantic's "Value error, "
        ({"participants": [{"name": "a"}, {"name": "a"}]}, "participant names must differ"),
        ({"participants": PAIR, "changes": [{"at": 3, "participant": "a"}]}, "changes.0: a change sets model"),
        ({"participants": PAIR, "detection": {"onset_min": 9}}, "detection: onset_min cannot exceed onset_run"),
    ],
)
def test_each_kind_of_problem_in_plain_words(data, line):
    with pytest.raises(SpecError) as caught:
        spec_from_dict(data, source="c.toml")
    err = caught.value
    assert len(err.problems) == 1 and str(err) == err.problems[0], err.problems
    assert err.problems[0].startswith("c.toml: ") and line in err.problems[0], err.problems
    assert not [leak for leak in LEAKS if leak in str(err)], str(err)


def test_every_problem_is_reported_in_file_order():
    data = {
        "participants": [{"name": "a", "temperature": "hot", "colour": 1}, {"name": "b", "max_tokens": 0}],
        "max_messages": 0,
        "on_loop": "never",
    }
    with pytest.raises(SpecError) as caught:
        spec_from_dict(data, source="c.toml")
    assert caught.value.problems == [
        'c.toml: participants.0.temperature: expected a number, got "hot"',
        "c.toml: participants.0.colour: unknown field",
        "c.toml: participants.1.max_tokens: must be at least 1, got 0",
        "c.toml: max_messages: must be at least 1, got 0",
        "c.toml: on_loop: expected 'stop', 'flag' or 'continue', got \"never\"",
    ]


def test_a_bad_pairing_is_one_problem_not_one_per_union_branch(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text('pairings = "some"\n[[participants]]\nname = "a"\n[[participants]]\nname = "b"\n')
    with pytest.raises(SpecError) as caught:
        load_experiment_spec(path)
    assert caught.value.problems == [
        f"{path}: pairings: expected 'all', 'all_with_self' or a list of [first, second] name pairs, got 'some'"
    ]


def test_batch_shows_every_error_one_line_each(tmp_path):
    (tmp_path / "exp.toml").write_text(
        'name = "bad name"\nrepeats = 0\ncolour = "red"\nopeners = []\n[[participants]]\nname = "a"\nsystem = 3\n'
    )
    proc = run_cli("batch", "exp.toml", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines == [
        "duologue: error: exp.toml: name: \"bad name\" is not allowed here: use letters, digits, '.', '_' and '-', "
        "starting with a letter or digit",
        "duologue: error: exp.toml: participants.0.system: expected text, got 3",
        "duologue: error: exp.toml: repeats: must be at least 1, got 0",
        "duologue: error: exp.toml: openers: needs at least 1 entry, got 0",
        "duologue: error: exp.toml: colour: unknown field",
    ], proc.stderr
    assert "more)" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_control_characters_in_a_key_are_escaped_on_the_one_line(tmp_path):
    from duologue.errors import SpecError
    from duologue.spec import load_conversation_spec

    path = tmp_path / "c.toml"
    path.write_text('"odd\\u001ekey" = 1\n"tab\\there" = 2\n', encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_conversation_spec(path)
    assert caught.value.problems == str(caught.value).splitlines()
    assert any("odd\\x1ekey" in p for p in caught.value.problems)
    assert any("tab\\there" in p for p in caught.value.problems)
