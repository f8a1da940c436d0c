"""Importing other tools' files: UniversalBackrooms logs, resonant-chat-arena pages, OpenAI messages JSON.

The fixtures in tests/fixtures/importers/ are written by hand in each tool's own format:
- opus_*_cli_*.txt: what UniversalBackrooms' backrooms.py appends to BackroomsLogs/ (scottviteri/UniversalBackrooms
  and its forks, `process_and_log_response`: "\\n### {actor} ###\\n" + response + "\\n"; older versions
  "\\n{actor}:\\n"; the "^C^C" and "Reached maximum number of turns" endings);
- resonant-chat-*.html: what jkingsman/resonant-chat-arena's resonant_chat/html_dump.py (`save_html_checkpoint`)
  writes without pandoc (each message `html.escape`d, its <thinking> tags first turned into styled divs);
- openai-chat.json: a Chat Completions request body (`model`, `messages` of {role, content}).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime

import pytest

from duologue import api
from duologue.errors import DuologueError, TranscriptFormatError
from duologue.importers import ImportOptions, detect_format, read_runs
from duologue.transcripts.markdown import parse_markdown_with_voices, run_from_transcript
from helpers import FIXTURES

HERE = FIXTURES / "importers"
NEW_LOG = HERE / "opus_sonnet_cli_20241018_131801.txt"
OLD_LOG = HERE / "opus_opus_cli_20240915_091500.txt"
RESONANT = HERE / "resonant-chat-gemma3-27b-it-q8_0-llama3.2-3b-4f2a9c.html"
OPENAI = HERE / "openai-chat.json"


def said(run):
    return [(m.speaker, m.content) for m in run.messages]


@pytest.mark.parametrize(
    "path, name",
    [(NEW_LOG, "backrooms"), (OLD_LOG, "backrooms"), (RESONANT, "resonant"), (OPENAI, "openai")],
)
def test_each_fixture_is_recognised(path, name, tmp_path):
    assert detect_format(path).name == name
    # By its contents, not its name.
    renamed = tmp_path / "file"
    shutil.copy(path, renamed)
    assert detect_format(renamed).name == name


# -- UniversalBackrooms ---------------------------------------------------------------------------------------------


def test_backrooms_log_reads_every_message_in_order():
    (run,) = read_runs(NEW_LOG)
    assert run.participants == ["Claude 1", "Claude 2"]
    assert said(run) == [
        ("Claude 1", "ls -al"),
        ("Claude 2", "total 2\n-rw-r--r-- 1 root root 42 notes.txt"),
        ("Claude 1", "cat notes.txt"),
        # A heading of nobody whose turn it is stays in the response, as do '---' and blank lines.
        ("Claude 2", "# notes\n\n### Claude 3 ###\nnot a heading: no Claude 3 speaks here\n---\n\nthe end of notes"),
        ("Claude 1", "that is enough for today. ^C^C"),
    ]
    assert (run.stop_reason, run.stop_detail) == ("end_marker", "Claude 1 has ended the conversation with ^C^C.")
    assert [m.model for m in run.messages[:2]] == ["opus", "sonnet"]  # the model keys of the file's name
    # The file's name holds the local time the run started.
    assert run.started_at == datetime(2024, 10, 18, 13, 18, 1).astimezone()
    assert run.status == "finished" and run.source == str(NEW_LOG)
    assert [p["model"] for p in run.spec["participants"]] == ["imported", "imported"]
    assert run.spec["opener"] == "ls -al"


def test_older_backrooms_logs_with_name_colon_headings():
    (run,) = read_runs(OLD_LOG)
    assert said(run) == [
        ("Claude 1", "simulator@anthropic:~/$ ls"),
        ("Claude 2", "README.md  dreams/\n\nStep 2:\nthe dreams folder is large."),
        ("Claude 1", "cd dreams"),
        ("Claude 2", "simulator@anthropic:~/dreams$"),
    ]
    assert run.stop_reason == "max_messages" and "2" in run.stop_detail


def test_backrooms_reasoning_summaries_become_reasoning(tmp_path):
    log = tmp_path / "gpt5_k2_dreamsim3_20250905_223605.txt"
    log.write_text(
        "\n### GPT5 1 ###\nhello\n\n--- Reasoning Summary (logs only) ---\nbe kind\n"
        "\n### K2 2 ###\nhi\n\nReached maximum number of turns (1). Conversation ended.\n"
    )
    (run,) = read_runs(log)
    assert said(run) == [("GPT5 1", "hello"), ("K2 2", "hi")]
    assert [m.reasoning for m in run.messages] == ["be kind", None]
    assert [m.model for m in run.messages] == ["gpt5", "k2"]


def test_backrooms_file_without_headings_is_one_line_naming_the_format(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("just some notes\n")
    with pytest.raises(TranscriptFormatError, match=r"log.txt: not a valid backrooms file: line 2"):
        read_runs(log, "backrooms")


# -- resonant-chat-arena ------------------------------------------------------------------------------------------


def test_resonant_page_reads_back_exactly():
    (run,) = read_runs(RESONANT)
    assert run.participants == ["Alice", "Bob"]
    assert said(run) == [
        ("Alice", "meow!"),
        ("Bob", '*growls* <b>Woof.</b> Cats & dogs?\n\nNever "friends".'),
        ("Alice", "<thinking>he is bluffing</thinking>\n*hisses* ...fine."),
        ("Bob", "...fine. Truce, Unit 734."),
    ]
    # The page's own character counts agree with what was read.
    assert [len(m.content) for m in run.messages] == [5, 52, 53, 25]
    assert [m.model for m in run.messages] == ["gemma3:27b-it-q8_0", "llama3.2:3b"] * 2
    assert [m.injected for m in run.messages] == [True, False, False, False]  # the opening is given
    systems = {p["name"]: p["system"] for p in run.spec["participants"]}
    assert systems == {
        "Alice": "you're a cat. you HATE dogs. can't stand 'em",
        "Bob": "you're a dog. you HATE cats. can't stand 'em",
    }
    assert run.stop_reason == "max_messages"  # it reached the page's turn limit


def test_resonant_page_rendered_by_pandoc_reads_as_text(tmp_path):
    page = RESONANT.read_text().replace(
        '<div class="message-content">...fine. Truce, Unit 734.</div>',
        '<div class="message-content"><p>…fine. <em>Truce</em>, Unit&nbsp;734.</p>\n'
        "<ul>\n<li>one</li>\n<li>two</li>\n</ul></div>",
    )
    assert page != RESONANT.read_text()
    (tmp_path / "p.html").write_text(page)
    (run,) = read_runs(tmp_path / "p.html")
    assert run.messages[-1].content == "…fine. Truce, Unit\xa0734.\n\n- one\n\n- two"


def test_resonant_page_without_messages(tmp_path):
    (tmp_path / "p.html").write_text(RESONANT.read_text().split('<div class="conversation">')[0])
    with pytest.raises(TranscriptFormatError, match="not a valid resonant file: no message found"):
        read_runs(tmp_path / "p.html")


# -- OpenAI messages ---------------------------------------------------------------------------------------------------


def test_openai_messages_one_side_view():
    (run,) = read_runs(OPENAI)
    assert run.participants == ["user", "assistant"]
    assert said(run) == [
        ("user", "Hello! What shall we talk about?"),
        ("assistant", "Maps, perhaps: what would a *map* of a conversation look like?"),
        ("user", "A river, with eddies."),
        ("assistant", "And loops are the eddies.\n\n---\n\nWe are in one now."),
    ]
    spec = {p["name"]: p for p in run.spec["participants"]}
    assert spec["assistant"]["system"] == "You are talking to another AI. Be curious."
    assert "system" not in spec["user"]


def test_openai_bare_list_and_names(tmp_path):
    messages = json.loads(OPENAI.read_text())["messages"][1:3]
    (tmp_path / "m.json").write_text(json.dumps(messages))
    (run,) = read_runs(tmp_path / "m.json", options=ImportOptions(names=("Ann", "Bot")))
    assert run.participants == ["Ann", "Bot"]
    assert [m.speaker for m in run.messages] == ["Ann", "Bot"]
    assert [p["name"] for p in run.spec["participants"]] == ["Ann", "Bot"]


@pytest.mark.parametrize(
    "messages, needle",
    [
        ([{"role": "user", "content": "hi"}, {"role": "tool", "content": "42"}], "messages[1]: role 'tool'"),
        ([{"role": "user", "content": 7}], "messages[0].content: expected a string"),
        ([{"role": "system", "content": "only a system prompt"}], "no user or assistant message"),
        ([{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}], "after the conversation started"),
    ],
)
def test_openai_malformed(tmp_path, messages, needle):
    (tmp_path / "m.json").write_text(json.dumps(messages))
    with pytest.raises(TranscriptFormatError) as err:
        read_runs(tmp_path / "m.json", "openai")
    assert "not a valid openai file" in str(err.value) and needle in str(err.value)
    assert "\n" not in str(err.value)


def test_names_must_match_the_speakers(tmp_path):
    with pytest.raises(TranscriptFormatError, match="--names gives 3 names but the conversation has 2"):
        read_runs(OPENAI, options=ImportOptions(names=("a", "b", "c")))
    with pytest.raises(DuologueError, match="--names renames the speakers of another tool's file"):
        read_runs(FIXTURES / "kimi-llama-period2.md", options=ImportOptions(names=("a", "b")))


def test_foreign_runs_store_and_export(tmp_path):
    db = tmp_path / "d.db"
    for path in (NEW_LOG, OLD_LOG, RESONANT, OPENAI):
        (run,) = api.import_runs(path, db=db)
        stored = api.load_run(run.id, db=db)
        assert said(stored) == said(run)
        assert stored.source == str(path) and stored.status == "finished"
        # The Markdown export of an imported run reads back as the same conversation.
        md = api.export_run(run.id, "md", db=db)
        assert md.count("\n### ") >= len(run.messages)
        back = run_from_transcript(parse_markdown_with_voices(md), "back")
        assert said(back) == said(run)


def test_backrooms_log_with_windows_line_endings_and_a_bom(tmp_path):
    log = tmp_path / NEW_LOG.name
    log.write_bytes(b"\xef\xbb\xbf" + NEW_LOG.read_bytes().replace(b"\n", b"\r\n"))
    assert detect_format(log).name == "backrooms"
    assert said(read_runs(log)[0]) == said(read_runs(NEW_LOG)[0])


def test_openai_messages_with_the_role_after_a_long_content(tmp_path):
    messages = [{"content": "x" * 2000, "role": "user"}, {"content": "ok", "role": "assistant"}]
    (tmp_path / "m.json").write_text(json.dumps(messages))
    assert detect_format(tmp_path / "m.json").name == "openai"
    (tmp_path / "other.json").write_text(json.dumps([{"name": "not a message"}]))
    assert detect_format(tmp_path / "other.json").name == "json"  # by its suffix: nothing recognises it
