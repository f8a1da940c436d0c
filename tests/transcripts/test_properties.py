"""Round trips and robustness of the transcript formats, on transcripts hypothesis makes up.

Markdown: any transcript the format can hold renders, parses and renders back to the same bytes;
one it cannot hold is refused when rendering. JSON: the same for runs. Both parsers, given any
text at all, either read it or raise TranscriptFormatError, never anything else.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from duologue.errors import TranscriptFormatError
from duologue.records import Message, Run
from duologue.transcripts import (
    Transcript,
    TranscriptMessage,
    parse_json,
    parse_jsonl,
    parse_markdown,
    parse_markdown_with_voices,
    render_json,
    render_jsonl,
    render_markdown,
)

# Any character a str can hold except lone surrogates (they cannot be written as UTF-8).
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)

# Pieces of the format itself, so that contents come close to the boundaries a parser looks for.
FORMAT_PIECES = ["---", "\n", "\n\n", "### ", "\r\n", "\r", " ", "**Messages:** 3", "# a ↔ b", "\ufeff", "[END]"]


def names() -> st.SearchStrategy[str]:
    """Speaker names the format can hold: one line, no surrounding spaces, no '↔'."""
    return st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n↔"), min_size=1, max_size=12).filter(
        lambda n: n == n.strip()
    )


naive_times = st.datetimes(max_value=datetime(9999, 12, 1)).map(lambda d: d.replace(microsecond=0))


@st.composite
def transcripts(draw):
    participants = draw(st.lists(names(), min_size=2, max_size=3, unique=True))
    pieces = st.one_of(any_text, st.sampled_from(FORMAT_PIECES), st.sampled_from(participants))
    contents = st.lists(pieces, max_size=6).map("".join)
    messages = draw(st.lists(st.builds(TranscriptMessage, st.sampled_from(participants), contents), max_size=6))
    started = draw(naive_times)
    return Transcript(participants, started, started + timedelta(seconds=draw(st.integers(0, 10**6))), messages)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transcripts())
def test_markdown_render_parse_render_is_byte_identical(t):
    try:
        text = render_markdown(t)
    except TranscriptFormatError:
        # Refused: a content holds a separator and a speaker heading. It must really hold one.
        assume(False)
    back = parse_markdown(text)
    assert back == t
    assert render_markdown(back) == text
    # The reader that guesses outside voices reads a plain file the same way.
    assert parse_markdown_with_voices(text) == t


@settings(max_examples=100, deadline=None)
@given(transcripts(), st.data())
def test_markdown_refuses_what_it_could_not_read_back(t, data):
    # Plant a boundary (separator + a known speaker's heading) inside one message of a file that renders.
    assume(t.messages)
    try:
        render_markdown(t)
    except TranscriptFormatError:
        assume(False)
    i = data.draw(st.integers(0, len(t.messages) - 1))
    speaker = data.draw(st.sampled_from(t.participants))
    m = t.messages[i]
    m.content = m.content + f"\n\n---\n\n### {speaker}\n\n" + data.draw(any_text)
    with pytest.raises(TranscriptFormatError, match=f"message {i + 1} contains"):
        render_markdown(t)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        any_text,
        st.lists(
            st.one_of(
                any_text,
                st.sampled_from(
                    FORMAT_PIECES + ["### a", "**Started:** 2026-01-02 03:04:05", "**Ended:** 2026-13-40 25:61:61"]
                ),
            ),
            max_size=20,
        ).map("".join),
    )
)
def test_markdown_parsers_raise_only_transcript_format_errors(text):
    for parse in (parse_markdown, parse_markdown_with_voices):
        try:
            parse(text)
        except TranscriptFormatError as e:
            assert "\n" not in str(e).strip(), str(e)  # one line


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transcripts(), st.data())
def test_markdown_parsers_on_damaged_files(t, data):
    try:
        text = render_markdown(t)
    except TranscriptFormatError:
        assume(False)
    # Cut, insert or delete somewhere in a valid file.
    at = data.draw(st.integers(0, len(text)))
    damage = data.draw(st.sampled_from(["cut", "insert", "delete"]))
    if damage == "cut":
        text = text[:at]
    elif damage == "insert":
        text = text[:at] + data.draw(st.one_of(any_text, st.sampled_from(FORMAT_PIECES))) + text[at:]
    else:
        text = text[:at] + text[at + data.draw(st.integers(1, 20)) :]
    for parse in (parse_markdown, parse_markdown_with_voices):
        try:
            parse(text)
        except TranscriptFormatError as e:
            assert "\n" not in str(e).strip(), str(e)  # one line


# --- JSON ---------------------------------------------------------------------------

zones = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
aware_times = st.builds(
    lambda d, z: d.replace(tzinfo=z),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    zones,
)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), finite, any_text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(any_text, inner, max_size=3)),
    max_leaves=10,
)


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | strategy


@st.composite
def runs(draw):
    participants = draw(st.lists(names(), min_size=2, max_size=3, unique=True))
    messages = [
        Message(
            index=i,
            speaker=draw(st.sampled_from(participants) | names()),
            content=draw(st.lists(st.one_of(any_text, st.sampled_from(FORMAT_PIECES)), max_size=5).map("".join)),
            model=draw(maybe(any_text)),
            reasoning=draw(maybe(any_text)),
            started_at=draw(maybe(aware_times)),
            ended_at=draw(maybe(aware_times)),
            ttft=draw(maybe(finite)),
            latency=draw(maybe(finite)),
            prompt_tokens=draw(maybe(st.integers(0, 10**6))),
            cached_tokens=draw(maybe(st.integers(0, 10**6))),
            completion_tokens=draw(maybe(st.integers(0, 10**6))),
            finish_reason=draw(maybe(st.sampled_from(["stop", "length", "end_marker"]))),
            attempts=draw(st.integers(1, 5)),
            injected=draw(st.booleans()),
        )
        for i in range(1, draw(st.integers(0, 5)) + 1)
    ]
    return Run(
        id=draw(st.text("0123456789abcdef", min_size=1, max_size=12)),
        spec=draw(st.dictionaries(any_text, json_values, max_size=4)),
        participants=participants,
        started_at=draw(aware_times),
        ended_at=draw(maybe(aware_times)),
        status=draw(st.sampled_from(["running", "finished", "interrupted", "error"])),
        stop_reason=draw(maybe(any_text)),
        stop_detail=draw(maybe(any_text)),
        duologue_version=draw(maybe(st.just("0.1.0"))),
        parent_run_id=draw(maybe(any_text)),
        fork_at=draw(maybe(st.integers(1, 100))),
        experiment_id=draw(maybe(any_text)),
        experiment_cell=draw(maybe(st.dictionaries(any_text, json_values, max_size=3))),
        source=draw(maybe(any_text)),
        messages=messages,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs(), maybe(st.dictionaries(any_text, json_values, max_size=3)))
def test_json_render_parse_render_is_byte_identical(run, analysis):
    text = render_json(run, analysis)
    back = parse_json(text)
    assert back == run
    assert render_json(back, analysis) == text


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(runs(), max_size=3))
def test_jsonl_render_parse_render_is_byte_identical(many):
    text = render_jsonl(many)
    back = parse_jsonl(text)
    assert back == many
    assert render_jsonl(back) == text


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        any_text,
        json_values.map(lambda v: json.dumps(v)),
        st.dictionaries(
            st.sampled_from(["format", "id", "participants", "started_at", "spec", "messages", "status"]),
            json_values,
            max_size=7,
        )
        .map(lambda d: {"format": "duologue.run/1", **d})
        .map(lambda d: json.dumps(d)),
    )
)
def test_json_parsers_raise_only_transcript_format_errors(text):
    for parse in (parse_json, parse_jsonl):
        try:
            parse(text)
        except TranscriptFormatError as e:
            assert "\n" not in str(e).strip(), str(e)
