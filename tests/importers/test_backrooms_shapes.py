"""Every shape of a UniversalBackrooms log, read one file at a time.

The fixtures in tests/fixtures/importers/backrooms_logs/ are written by hand, with invented text, in the
shapes samhains/UniversalBackrooms' backrooms.py (and its media_agent.py, discord_agent.py) writes to
var/backrooms_logs/{template}/ and wrote to BackroomsLogs/: the `### Backrooms Run ###` header
(Template, Models, Started), `### Round N/M` lines, numbered actors, reasoning-model actors, the blocks of
the media, Discord and SQL agents, an agent's error line, the template's variables, and the end lines
(^C^C, the context budget, the maximum number of turns, none at all).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from duologue.errors import NoMessageError, TranscriptFormatError
from duologue.importers import detect_format, read_runs
from duologue.importers.corpus import find_files
from helpers import FIXTURES

LOGS = FIXTURES / "importers" / "backrooms_logs"
FULL = LOGS / "dreamsim3" / "gpt5_k2_dreamsim3_20250906_101500.txt"
ENDED = LOGS / "dreamsim3" / "k2_k2_dreamsim3_20250907_090000.txt"
BUDGET = LOGS / "emoji_brother" / "opus4_opus4_emoji_brother_20250920_120000.txt"
REASONING = LOGS / "testing" / "hermes_reasoning_hermes_reasoning_cli_20250901_205804.txt"
ONE_SIDE = LOGS / "dreamsim3" / "haiku3_opus4_dreamsim3_20250910_151643.txt"
HEADER_ONLY = LOGS / "gallery" / "opus4_gallery_20250920_134359.txt"
VARS_ONLY = LOGS / "emoji_brother" / "sonnet4_sonnet4_emoji_brother_20250923_212246.txt"
AGENTS_ONLY = LOGS / "oneoff" / "lucid_20250912_212222_PAPER LIGHTHOUSE.txt"


def said(run):
    return [(m.speaker, m.content) for m in run.messages]


def only(path):
    (run,) = read_runs(path)
    return run


@pytest.mark.parametrize("path", [FULL, ENDED, BUDGET, REASONING, ONE_SIDE, HEADER_ONLY, VARS_ONLY, AGENTS_ONLY])
def test_every_shape_is_recognised_as_a_backrooms_log(path):
    assert detect_format(path).name == "backrooms"


def test_the_header_gives_the_template_the_models_and_the_start():
    run = only(FULL)
    meta = run.spec["metadata"]
    assert (meta["format"], meta["template"], meta["models"]) == ("backrooms", "dreamsim3", ["gpt5", "k2"])
    assert meta["started"] == "2025-09-06T01:15:00.250000+00:00"
    assert run.started_at == datetime(2025, 9, 6, 1, 15, 0, 250000, tzinfo=UTC)  # the header's, not the name's
    assert meta["rounds"] == "3/3"  # the last round line: round 3 of 3
    # Numbered actors are the participants; each message's model is its position's key in `Models`.
    assert run.participants == ["GPT-5 1", "Kimi K2 2"]
    assert [m.model for m in run.messages] == ["gpt5", "k2"] * 3


def test_rounds_split_nothing_and_every_message_is_kept_verbatim():
    assert said(only(FULL)) == [
        (
            "GPT-5 1",
            "dreamsim> you stand in a lighthouse made of folded maps.\n\nthe lamp turns; each sweep redraws the coast.",
        ),
        ("Kimi K2 2", "> climb the stairs"),
        # A heading that does not follow an empty line is part of the response.
        (
            "GPT-5 1",
            "the stairs are numbered in a language of tides.\n### Kimi K2 2 ###\n"
            "(a heading-like line inside a response stays in it)",
        ),
        ("Kimi K2 2", "> read the numbers aloud\n"),  # the response's own trailing newline kept
        ("GPT-5 1", "the numbers rhyme with your name."),
        ("Kimi K2 2", "> wake up"),
    ]


def test_agents_blocks_are_events_after_the_message_they_follow_never_participants():
    run = only(FULL)
    assert not any("Agent" in p or "Discord" in p or "SQL" in p for p in run.participants)
    assert [(e.kind, e.detail, e.message_index) for e in run.events] == [
        ("agent", "Media Agent", 2),
        ("agent", "Media Agent (Discord Post)", 2),
        ("agent", "Discord Agent", 2),
        ("agent", "SQL (semantic)", 4),
        ("agent", "SQL (fts+trgm, caption)", 4),
        ("agent_error", "Discord Agent error: list index out of range", 4),
        ("agent", "Discord Post", 6),
        ("agent", "Discord Post (fallback)", 6),
    ]
    media = run.events[0].data
    assert media == {
        "agent": "Media Agent",
        "text": 'Mode: t2i\nPrompt: a lighthouse of folded paper maps at dusk\nResult: {"uri": '
        '"https://example.invalid/lighthouse.png"}',
    }
    assert run.events[5].data["agent"] == "Discord Agent"
    other = only(ENDED)
    assert [e.detail for e in other.events] == [
        "Media Agent (Placeholder)",
        "Media Agent (Skip)",
        "Discord Agent (Transcript)",
    ]
    assert other.participants == ["Kimi K2 1", "Kimi K2 2"]


@pytest.mark.parametrize(
    "path, reason, detail",
    [
        (FULL, "max_messages", "Reached maximum number of turns (3). Conversation ended."),
        # backrooms.py writes the max-turns line after ^C^C and after the budget line too: the first says why.
        (ENDED, "end_marker", "Kimi K2 1 has ended the conversation with ^C^C."),
        (BUDGET, "context_full", "Context budget limit reached (>= 80% of 200000 tokens). Conversation ended."),
        (REASONING, "interrupted", "no end line: the log stops in round 2; the run was stopped or failed"),
    ],
)
def test_end_lines_become_the_stop_reason_with_the_line_as_detail(path, reason, detail):
    run = only(path)
    assert (run.stop_reason, run.stop_detail) == (reason, detail)
    assert run.status == "finished"
    assert not any("Reached maximum" in m.content or "has ended the conversation" in m.content for m in run.messages)


def test_an_agents_error_that_ends_the_log_is_the_error_that_stopped_it(tmp_path):
    log = tmp_path / "k2_k2_dreamsim3_20250909_202002.txt"
    log.write_text(
        "### Backrooms Run ###\nTemplate: dreamsim3\nModels: k2, k2\nStarted: 2025-09-09T10:20:02+00:00\n"
        "\n### Round 1/30\n\n### Kimi K2 1 ###\nhello\n\n### Kimi K2 2 ###\nhi\n"
        "\nDiscord Agent error: unhandled errors in a TaskGroup (1 sub-exception)\n",
        encoding="utf-8",
    )
    run = only(log)
    assert (run.stop_reason, run.stop_detail) == (
        "error",
        "Discord Agent error: unhandled errors in a TaskGroup (1 sub-exception)",
    )
    assert said(run) == [("Kimi K2 1", "hello"), ("Kimi K2 2", "hi")]
    # Followed by more of the run, the same line is an event (the run went on).
    log.write_text(log.read_text(encoding="utf-8") + "\n### Round 2/30\n\n### Kimi K2 1 ###\nagain\n", encoding="utf-8")
    run = only(log)
    assert run.stop_reason == "interrupted" and [e.kind for e in run.events] == ["agent_error"]


def test_reasoning_model_actors_and_an_empty_response():
    run = only(REASONING)
    assert run.participants == ["Hermes 405B (Reasoning) 1", "Hermes 405B (Reasoning) 2"]
    assert said(run) == [
        ("Hermes 405B (Reasoning) 1", "ls /dreams"),
        ("Hermes 405B (Reasoning) 2", ""),
        ("Hermes 405B (Reasoning) 1", "cat /dreams/README"),
    ]
    # No header: the file's name gives the keys (hermes_reasoning is one key) and the template.
    meta = run.spec["metadata"]
    assert (meta["models"], meta["template"]) == (["hermes_reasoning", "hermes_reasoning"], "cli")
    assert run.started_at == datetime(2025, 9, 1, 20, 58, 4).astimezone()


def test_a_log_where_one_side_spoke_keeps_its_message_and_both_participants():
    run = only(ONE_SIDE)
    assert said(run) == [("Claude Haiku 1", "a small boat drifts into the library.")]
    # The header names the second model; its actor never spoke, so it is named by its key.
    assert run.participants == ["Claude Haiku 1", "opus4 2"]
    assert run.messages[0].model == "haiku3"
    assert run.stop_reason == "interrupted"


def test_one_side_of_the_same_model_is_named_like_the_other(tmp_path):
    log = tmp_path / "k2_k2_dreamsim3_20250908_073906.txt"
    log.write_text("\n### Round 1/30\n\n### Kimi K2 1 ###\nthe first and only message\n", encoding="utf-8")
    run = only(log)
    assert run.participants == ["Kimi K2 1", "Kimi K2 2"]
    assert run.spec["metadata"]["models"] == ["k2", "k2"] and run.spec["metadata"]["template"] == "dreamsim3"


def test_the_templates_variables_are_kept_with_the_run():
    meta = only(BUDGET).spec["metadata"]
    assert meta["template_vars"] == {
        "emoji_brother": {"dream_1": "a bakery where the bread is made of weather", "form": "Emoji"}
    }


@pytest.mark.parametrize(
    "path, reason",
    [
        (HEADER_ONLY, "no message to import: the log holds only the run's header (Template: gallery, Models: opus4)"),
        (
            VARS_ONLY,
            "no message to import: the log holds only the run's header (Template: emoji_brother, Models: sonnet4, "
            "sonnet4), the template's variables and a round line",
        ),
        (
            AGENTS_ONLY,
            "no message to import: the log holds only blocks of Media Agent, Media Agent (Discord Post)",
        ),
    ],
)
def test_a_log_without_a_message_is_refused_with_what_it_holds(path, reason):
    with pytest.raises(NoMessageError) as caught:
        read_runs(path)
    assert str(caught.value) == f"{path}: {reason}"


def test_an_empty_file_holds_no_message(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(NoMessageError, match="empty.txt: no message to import: the file is empty"):
        read_runs(tmp_path / "empty.txt", "backrooms")


def test_bytes_that_are_not_utf8_are_replaced_and_said(tmp_path):
    log = tmp_path / FULL.name
    data = FULL.read_bytes().replace(b"folded maps", b"folded \xff\xfe maps").replace(b"wake up", b"wake \xc3 up")
    log.write_bytes(data)
    run = only(log)
    assert run.messages[0].content.startswith("dreamsim> you stand in a lighthouse made of folded \ufffd\ufffd maps.")
    assert run.messages[-1].content == "> wake \ufffd up"
    note = run.spec["metadata"]["import_note"]
    assert note == "3 byte sequences that are not UTF-8 replaced by U+FFFD (the first on line 9)"
    assert said(run)[1:5] == said(only(FULL))[1:5]


def test_two_runs_started_in_the_same_second_share_a_file(tmp_path):
    header = (
        "### Backrooms Run ###\nTemplate: dreamsim3\nModels: opus4, opus4\nStarted: 2025-09-10T12:04:57.0{}+00:00\n"
    )
    log = tmp_path / "opus4_opus4_dreamsim3_20250910_220457.txt"
    log.write_text(
        header.format(1)
        + "\n### Round 1/30\n\n### Claude 1 ###\nfirst run\n\n### Claude 2 ###\nits reply\n"
        + header.format(2)
        + "\n### Round 1/30\n\n### Claude 1 ###\nsecond run\n",
        encoding="utf-8",
    )
    first, second = read_runs(log)
    assert said(first) == [("Claude 1", "first run"), ("Claude 2", "its reply")]
    assert said(second) == [("Claude 1", "second run")]
    assert first.id != second.id and first.started_at < second.started_at


def test_text_before_the_first_heading_is_kept_as_a_preamble(tmp_path):
    log = tmp_path / "gpt5_gpt5_dreamsim2_20250905_220552.txt"
    log.write_text("\nTRANSCRIPT:\n\n### GPT-5 1 ###\nhello\n\n### GPT-5 2 ###\nhi\n", encoding="utf-8")
    assert detect_format(log).name == "backrooms"
    run = only(log)
    assert said(run) == [("GPT-5 1", "hello"), ("GPT-5 2", "hi")]
    assert run.spec["metadata"]["preamble"] == "TRANSCRIPT:"


@pytest.mark.parametrize("text", ["just some notes\n", "Notes\n\n### Ideas ###\nan unnumbered heading is no actor's\n"])
def test_a_file_of_no_log_shape_is_still_a_format_error(tmp_path, text):
    (tmp_path / "notes.txt").write_text(text)
    assert find_files([tmp_path]) == ([], [tmp_path / "notes.txt"])  # no format recognises it: a folder leaves it
    with pytest.raises(TranscriptFormatError, match="not a valid backrooms file: line 2") as caught:
        read_runs(tmp_path / "notes.txt", "backrooms")
    assert not isinstance(caught.value, NoMessageError)
