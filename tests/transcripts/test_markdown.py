import json
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from duologue.errors import TranscriptFormatError
from duologue.records import Message, Run
from duologue.transcripts import (
    Transcript,
    TranscriptMessage,
    parse_markdown,
    render_markdown,
    render_run_markdown,
    run_from_transcript,
    transcript_from_run,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "kimi-llama-period2.md"

STARTED = datetime(2026, 3, 14, 9, 26, 53)
ENDED = datetime(2026, 3, 14, 9, 41, 7)


def transcript(participants, *turns):
    """Participants take turns in title order; a (speaker, content) turn is an outside voice."""
    in_turn = (participants[i % len(participants)] for i in range(len(turns)))
    messages = [
        TranscriptMessage(*turn) if isinstance(turn, tuple) else TranscriptMessage(next(in_turn), turn)
        for turn in turns
    ]
    return Transcript(list(participants), STARTED, ENDED, messages)


def assert_round_trips(t, **parse_options):
    text = render_markdown(t)
    assert parse_markdown(text, **parse_options) == t
    assert render_markdown(parse_markdown(text, **parse_options)) == text


def format_error(text, **parse_options) -> str:
    with pytest.raises(TranscriptFormatError) as caught:
        parse_markdown(text, **parse_options)
    message = str(caught.value)
    assert message and "\n" not in message  # one line, meant for a person
    return message


@pytest.fixture
def local_zone():
    """Run a test under a given local time zone (POSIX TZ strings need no tz database)."""
    saved = os.environ.get("TZ")

    def use(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    yield use
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


# -- the example from the original transcripts --------------------------------


def test_example_round_trips_byte_for_byte():
    text = EXAMPLE.read_text(encoding="utf-8")
    assert render_markdown(parse_markdown(text)) == text


def test_example_parses_as_its_expected_json_says():
    expected = json.loads(EXAMPLE.with_suffix(".expected.json").read_text(encoding="utf-8"))
    t = parse_markdown(EXAMPLE.read_text(encoding="utf-8"))
    assert t.participants == expected["participants"]
    assert len(t.messages) == expected["messages"]
    assert t.started == datetime(2026, 3, 14, 9, 26, 53)
    assert t.ended == datetime(2026, 3, 14, 9, 27, 41)
    assert t.messages[0] == TranscriptMessage("kimi-k2", " ")  # the empty opener
    assert [m.speaker for m in t.messages] == expected["participants"] * 8 + ["kimi-k2"]
    assert t.messages[2].content.startswith("There is, actually.")
    assert "the shape.  \nWhere" in t.messages[2].content  # trailing double spaces kept
    assert t.messages[16].content == t.messages[14].content == "Home.  \nThe dot, the curve, the circle.  \n\n[END]"


# -- round trips of hard cases ------------------------------------------------


def loop_of_97():
    """57 varied messages, then a goodbye loop of period 2 for the last 40."""
    varied = [f"Thought {i}: the {'map' if i % 3 else 'circle'} bends here.  \n\n---\n\nor does it?" for i in range(56)]
    loop = ["Farewell, kind soul 🌙  \n\n[END]", "Farewell, gentle one ✨\n\n[END]"] * 20
    return transcript(["qwen3-next", "deepseek-v3.1"], " ", *varied, *loop)


CASES = {
    "three participants": transcript(
        ["kimi-k2", "llama-3.3-70b", "claude"], " ", "Hello both.", "Hi! 👋", "Three of us, then."
    ),
    "dash lines inside content": transcript(
        ["a", "b"],
        "---",
        "above\n---\nbelow",
        "\n---\n",
        "para\n\n---\n\npara",  # the separator itself, inside a message
        "---\n\n### a",  # a heading lookalike without the blank line after it
        "x\n\n---\n\n### stranger\n\nnot a participant, so not a boundary",
        "ends with a separator\n\n---\n\n",
    ),
    "whitespace verbatim": transcript(
        ["a", "b"], " ", "trailing  \ndouble  \n", "\n\nleading blank lines", "\n", "   ", "\t tab", "a\n\n\n\nb"
    ),
    "unicode": transcript(
        ["gpt-4o-mini", "qwen/qwen-plus"],
        "🌀🙏✨ 🌀🙏✨",
        "zero\u200bwidth\u200d\ufeffjoiners\u200f",
        "combining e\u0301 and NFKC ﬁ",
        "line\u2028separator\u2029paragraph",
        "right-to-left שלום",
    ),
    "end markers": transcript(["a", "b"], "bye [END]", "[END]", "[END]\n\n[END]  "),
    "empty messages": transcript(["a", "b"], "", "", "not empty", ""),
    "carriage returns inside content": transcript(["a", "b"], "windows\r\nline\r\n", "\r"),
    "names with regex characters": transcript(["a.b (v2)", "c+d*|e"], "x", "y\n\n---\n\n### a.b (v3)\n\nz"),
    "one participant": transcript(["solo"], "alone", "still alone"),
    "no messages": transcript(["a", "b"]),
    "97 messages ending in a 40-message loop": loop_of_97(),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_round_trip(case):
    assert_round_trips(case)


def test_97_message_case_is_what_it_claims():
    t = CASES["97 messages ending in a 40-message loop"]
    assert len(t.messages) == 97
    assert "**Messages:** 97\n" in render_markdown(t)
    assert len({m.content for m in t.messages[-40:]}) == 2


def test_render_is_byte_exact():
    t = transcript(["A", "B"], " ", "Hi.  \n\n[END]")
    assert render_markdown(t) == (
        "# A ↔ B\n\n"
        "**Started:** 2026-03-14 09:26:53\n"
        "**Ended:** 2026-03-14 09:41:07\n"
        "**Messages:** 2\n\n"
        "---\n\n"
        "### A\n\n \n\n---\n\n"
        "### B\n\nHi.  \n\n[END]\n\n---\n\n"
    )


def test_render_drops_microseconds_and_pads_old_years():
    t = Transcript(["a"], datetime(987, 1, 2, 3, 4, 5, 999999), datetime(2026, 1, 1), [])
    assert "**Started:** 0987-01-02 03:04:05\n" in render_markdown(t)
    assert parse_markdown(render_markdown(t)).started == datetime(987, 1, 2, 3, 4, 5)


def test_render_refuses_times_with_a_zone():
    with pytest.raises(ValueError):
        render_markdown(Transcript(["a"], datetime(2026, 1, 1, tzinfo=UTC), ENDED, []))


# Pieces that make near-boundaries likely: separators, headings, names, newlines.
PIECES = ["\n\n---\n\n", "---", "\n", "\n\n", " ", "  ", "### ", "### a"]
PIECES += ["a", "b", "d", "[END]", "🌀", "\u200b", "\r"]


def random_transcript(rng: random.Random) -> Transcript:
    names = ["a", "b", "c"][: rng.randint(1, 3)]
    messages = [
        TranscriptMessage(rng.choice(names), "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 25))))
        for _ in range(rng.randint(0, 12))
    ]
    return Transcript(names, STARTED, ENDED, messages)


def representable(t: Transcript) -> bool:
    """False for the one thing the format cannot hold (see the module docstring)."""
    return not any(f"\n\n---\n\n### {n}\n\n" in m.content + "\n\n" for m in t.messages for n in t.participants)


def test_random_transcripts_round_trip_or_are_refused():
    rng = random.Random(20260314)
    outcomes = {True: 0, False: 0}
    for _ in range(3000):
        t = random_transcript(rng)
        if representable(t):
            assert_round_trips(t)
        else:  # refused when written, never misread later
            with pytest.raises(TranscriptFormatError, match="cannot hold"):
                render_markdown(t)
        outcomes[representable(t)] += 1
    assert min(outcomes.values()) > 100  # both kinds were exercised


@pytest.mark.parametrize(
    "content",
    [
        "one\n\n---\n\n### b\n\ntwo",  # would split into two messages
        "over to you\n\n---\n\n### b",  # would swallow the real next heading: same count, wrong text
        "over to you\n\n---\n\n### a\n",
    ],
)
def test_content_holding_a_boundary_is_refused_when_rendered(content):
    t = transcript(["a", "b"], content, "three")
    with pytest.raises(TranscriptFormatError, match="message 1 contains '---' followed by a '### {speaker}' heading"):
        render_markdown(t)


def test_hand_written_extra_block_is_reported():
    text = render_markdown(transcript(["a", "b"], "one", "two")).replace("**Messages:** 2", "**Messages:** 1")
    assert format_error(text) == (
        "header says 1 messages but the file has 2 (does a message itself contain '---' and a '### {speaker}' heading?)"
    )


@pytest.mark.parametrize("name", ["", " a", "a\nb", "a ↔ b"])
def test_render_refuses_names_the_format_cannot_hold(name):
    with pytest.raises(TranscriptFormatError, match="cannot hold the speaker name"):
        render_markdown(transcript([name, "b"], "x"))
    with pytest.raises(TranscriptFormatError, match="cannot hold the speaker name"):
        render_markdown(transcript(["a", "b"], (name, "x")))


# -- outside voices -----------------------------------------------------------


def test_outside_voices_need_to_be_named():
    t = transcript(["a", "b"], " ", "hi", ("narrator", "A bell rings."), "what was that?")
    assert_round_trips(t, extra_speakers=["narrator"])
    assert format_error(render_markdown(t)) == "line 21: speaker 'narrator' is not in the title"


def test_outside_voice_opening_the_conversation():
    t = transcript(["a", "b"], ("moderator", "Discuss."), "ok", "fine")
    assert_round_trips(t, extra_speakers={"moderator"})
    assert format_error(render_markdown(t)) == "line 9: speaker 'moderator' is not in the title"


# -- line endings -------------------------------------------------------------


def test_windows_line_endings_are_read_as_lf():
    text = EXAMPLE.read_text(encoding="utf-8")
    crlf = text.replace("\n", "\r\n")
    assert parse_markdown(crlf) == parse_markdown(text)
    assert render_markdown(parse_markdown(crlf)) == text  # written back as LF


def test_leading_byte_order_mark_is_ignored():
    text = EXAMPLE.read_text(encoding="utf-8")
    assert parse_markdown("\ufeff" + text) == parse_markdown(text)


def test_crlf_inside_content_of_an_lf_file_is_content():
    t = transcript(["a", "b"], "one\r\ntwo\r\n", "three\r")
    assert_round_trips(t)


# -- malformed files ----------------------------------------------------------


def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def test_empty_file():
    assert format_error("").startswith("empty file")


def test_missing_title():
    text = example_text().split("\n", 2)[2]  # starts at the Started line
    assert format_error(text).startswith("line 1: expected the title")


def test_title_without_a_name():
    text = example_text().replace("# kimi-k2 ↔ llama-3.3-70b", "# kimi-k2 ↔ ", 1)
    assert format_error(text).startswith("line 1: bad participant name")


EXPECTED_STARTED = "line 3: expected '**Started:** YYYY-MM-DD HH:MM:SS'"


@pytest.mark.parametrize(
    "bad, expected",
    [
        ("**Started:** 14/03/2026 09:26", f"{EXPECTED_STARTED}, got '14/03/2026 09:26'"),
        ("**Started:** 2026-02-30 09:26:53", "line 3: '2026-02-30 09:26:53' is not a real date and time"),
        ("**Started:** 2026-03-14 25:00:00", "line 3: '2026-03-14 25:00:00' is not a real date and time"),
        ("**Started:** 2026-03-14T09:26:53", f"{EXPECTED_STARTED}, got '2026-03-14T09:26:53'"),
        ("Started: 2026-03-14 09:26:53", EXPECTED_STARTED),
    ],
)
def test_bad_start_date(bad, expected):
    text = example_text().replace("**Started:** 2026-03-14 09:26:53", bad)
    assert format_error(text) == expected


def test_bad_end_date():
    text = example_text().replace("**Ended:** 2026-03-14 09:27:41", "**Ended:** soon")
    assert format_error(text) == "line 4: expected '**Ended:** YYYY-MM-DD HH:MM:SS', got 'soon'"


@pytest.mark.parametrize("count", ["18", "16", "0"])
def test_wrong_message_count(count):
    text = example_text().replace("**Messages:** 17", f"**Messages:** {count}")
    assert format_error(text).startswith(f"header says {count} messages but the file has 17")


@pytest.mark.parametrize("count", ["017", "seventeen", "-17", ""])
def test_count_that_is_not_a_plain_number(count):
    text = example_text().replace("**Messages:** 17", f"**Messages:** {count}")
    assert format_error(text).startswith("line 5: expected '**Messages:** N'")


def test_unknown_speaker_in_the_middle():
    text = example_text()
    lines = text.split("\n")
    number = [i for i, line in enumerate(lines, 1) if line == "### llama-3.3-70b"][4]
    lines[number - 1] = "### bob"
    assert format_error("\n".join(lines)) == f"line {number}: speaker 'bob' is not in the title"


def test_unknown_first_speaker():
    text = example_text().replace("### kimi-k2", "### kimi", 1)
    assert format_error(text) == "line 9: speaker 'kimi' is not in the title"


@pytest.mark.parametrize("cut", [1, 2, 5, 7])
def test_missing_final_separator(cut):
    text = example_text()[:-cut]
    message = format_error(text)
    assert "must end with '---' and an empty line" in message
    assert message.startswith(f"line {text.count(chr(10)) + 1}:")


def test_text_after_the_last_separator():
    assert "must end with '---'" in format_error(example_text() + "trailing words\n")


def test_header_cut_short():
    assert format_error("# a ↔ b\n\n**Started:** 2026-03-14 09:26:53\n") == (
        "line 4: expected '**Ended:** YYYY-MM-DD HH:MM:SS'"
    )
    assert format_error("# a ↔ b") == "line 1: expected the title '# {name} ↔ {name}'"


def test_header_without_its_separator():
    text = example_text().replace("**Messages:** 17\n\n---\n\n", "**Messages:** 17\n\n", 1)
    assert format_error(text) == "line 7: expected '---'"


def test_block_without_blank_line_after_heading():
    text = example_text().replace("### llama-3.3-70b\n\nHi there!", "### llama-3.3-70b\nHi there!", 1)
    # The block is not found as a boundary, so it joins the opener; the count catches it.
    assert format_error(text).startswith("header says 17 messages but the file has 16")


def test_junk_where_a_block_should_start():
    text = example_text().replace("---\n\n### kimi-k2\n\n \n", "---\n\nhello\n", 1)
    assert format_error(text) == "line 9: expected '### {speaker}' to start message 1"


@pytest.mark.parametrize("seed", range(5))
def test_binary_garbage(seed):
    garbage = random.Random(seed).randbytes(4000)
    format_error(garbage.decode("latin-1"))
    format_error(garbage.decode("utf-8", errors="replace"))


def test_binary_garbage_after_a_valid_header():
    header = "# a ↔ b\n\n**Started:** 2026-03-14 09:26:53\n**Ended:** 2026-03-14 09:26:53\n**Messages:** 3\n\n---\n\n"
    assert format_error(header + "\x00\xff\x89PNG\r\n\x1a").startswith("line 9: expected '### {speaker}'")


# -- runs and wall-clock times ------------------------------------------------


def a_run(**overrides) -> Run:
    values = dict(
        id="r1",
        spec={},
        participants=["a", "b"],
        started_at=datetime(2026, 3, 14, 8, 0, 0, 654321, tzinfo=UTC),
        ended_at=datetime(2026, 3, 14, 8, 5, 30, 999999, tzinfo=UTC),
        status="finished",
        messages=[
            Message(1, "a", " ", injected=True),
            Message(2, "b", "hi", model="m", ended_at=datetime(2026, 3, 14, 8, 1, 0, tzinfo=UTC)),
        ],
    )
    return Run(**(values | overrides))


def test_transcript_from_run_uses_local_wall_clock(local_zone):
    local_zone("IST-5:30")  # UTC+05:30
    t = transcript_from_run(a_run())
    assert t.started == datetime(2026, 3, 14, 13, 30, 0)  # microseconds dropped
    assert t.ended == datetime(2026, 3, 14, 13, 35, 30)
    assert t.participants == ["a", "b"]
    assert t.messages == [TranscriptMessage("a", " "), TranscriptMessage("b", "hi")]


def test_running_run_ends_at_its_last_message(local_zone):
    local_zone("UTC0")
    assert transcript_from_run(a_run(ended_at=None, status="running")).ended == datetime(2026, 3, 14, 8, 1, 0)
    assert transcript_from_run(a_run(ended_at=None, messages=[])).ended == datetime(2026, 3, 14, 8, 0, 0)


@pytest.mark.parametrize("zone", ["UTC0", "IST-5:30", "EST5EDT,M3.2.0,M11.1.0", "NZST-12NZDT,M9.5.0,M4.1.0/3"])
def test_transcript_to_run_and_back_keeps_wall_clock(local_zone, zone):
    local_zone(zone)
    text = example_text()
    run = run_from_transcript(parse_markdown(text), "imported-1", source=str(EXAMPLE))
    assert run.started_at.tzinfo == UTC
    assert render_run_markdown(run) == text


def test_run_from_transcript_converts_local_time_to_utc(local_zone):
    local_zone("EST5EDT,M3.2.0,M11.1.0")  # 2026-03-14 is after the switch: UTC-4
    run = run_from_transcript(parse_markdown(example_text()), "x")
    assert run.started_at == datetime(2026, 3, 14, 13, 26, 53, tzinfo=UTC)
    assert run.ended_at == datetime(2026, 3, 14, 13, 27, 41, tzinfo=UTC)


def test_run_from_transcript_fields():
    t = parse_markdown(example_text())
    run = run_from_transcript(t, "imported-1", source="kimi.md")
    assert (run.id, run.status, run.stop_reason, run.source) == ("imported-1", "finished", None, "kimi.md")
    assert run.participants == t.participants and run.title == "kimi-k2 ↔ llama-3.3-70b"
    assert run.spec == {
        "participants": [{"name": "kimi-k2", "model": "imported"}, {"name": "llama-3.3-70b", "model": "imported"}],
        "opener": " ",
    }
    assert [m.index for m in run.messages] == list(range(1, 18))
    assert all(m.model is None and not m.injected for m in run.messages)
    assert [(m.speaker, m.content) for m in run.messages] == [(m.speaker, m.content) for m in t.messages]
