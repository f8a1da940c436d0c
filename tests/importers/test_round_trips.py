"""Random conversations written the way each tool writes them, read back the same.

The writers below follow the tools' formats: UniversalBackrooms' backrooms.py appends
"\\n### {actor} ###\\n" (older versions "\\n{actor}:\\n"), the response and "\\n" for each message
(`process_and_log_response`); resonant-chat-arena's html_dump.py writes each message, its <thinking>
tags first turned into styled divs, through `html.escape` (`save_html_checkpoint`, without pandoc);
an OpenAI messages file is the request's `messages` list.
"""

from __future__ import annotations

import html
import json
import random
import re

import pytest

from duologue.importers import read_runs

PIECES = [
    "ls -al",
    "",
    "---",
    "### Claude 3 ###",
    "### Note ###",
    "Step 4:",
    "Note:",
    "Claude 9:",
    "simulator@anthropic:~/$",
    "  indented  ",
    "✨ 🌀",
    "<b>bold</b> & <i>\"quoted\"</i> 'single'",
    "<thinking>a thought</thinking>",
    "a < b > c &amp; d",
    "^C",
    "```\ncode\n```",
]


def content(rng: random.Random) -> str:
    return "\n".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6)))


def conversation(rng: random.Random, actors: list[str]) -> list[tuple[str, str]]:
    return [(actors[k % len(actors)], content(rng)) for k in range(rng.randint(2, 12))]


def backrooms_log(messages: list[tuple[str, str]], old: bool) -> str:
    heading = "\n{}:\n" if old else "\n### {} ###\n"
    return "".join(heading.format(actor) + response + "\n" for actor, response in messages)


@pytest.mark.parametrize("old", [False, True])
def test_backrooms_logs_round_trip(tmp_path, old):
    rng = random.Random(13 + old)
    for k in range(40):
        actors = rng.choice([["Claude 1", "Claude 2"], ["GPT4o 1", "Claude 2"], ["I-405 1", "B-405 2", "Mini 3"]])
        messages = conversation(rng, actors)
        ending = rng.choice(["", "\nReached maximum number of turns (6). Conversation ended.\n"])
        if not old:
            ending = rng.choice([ending, f"\n{messages[-1][0]} has ended the conversation with ^C^C.\n"])
        path = tmp_path / f"opus_opus_cli_20240101_0000{k:02d}.txt"
        path.write_text(backrooms_log(messages, old) + ending, encoding="utf-8")
        (run,) = read_runs(path, "backrooms")
        assert [(m.speaker, m.content) for m in run.messages] == messages, path.read_text()
        assert run.participants == list(dict.fromkeys(a for a, _ in messages))


def resonant_page(messages: list[tuple[str, str]]) -> str:
    def rendered(text: str) -> str:
        for tag in ("thinking", "think"):
            text = re.sub(
                f"<{tag}>",
                f'<div class="thinking-block"><span class="thinking-tag">&lt;{tag}&gt;</span>'
                '<div class="thinking-content">',
                text,
                flags=re.IGNORECASE,
            )
            text = re.sub(
                f"</{tag}>", f'</div><span class="thinking-tag">&lt;/{tag}&gt;</span></div>', text, flags=re.IGNORECASE
            )
        return html.escape(text)

    blocks = "".join(
        f"""
    <div class="message {speaker.lower()}">
        <div class="message-header">
            <div class="speaker-info">
                <span class="speaker-name">{html.escape(speaker)}</span>
                <span class="model-badge">gemma3:27b</span>
            </div>
            <div>
                <span class="turn-number">Turn {turn}</span>
                <span class="char-count">{len(text):,} chars</span>
            </div>
        </div>
        <div class="message-content">{rendered(text)}</div>        </div>"""
        for turn, (speaker, text) in enumerate(messages, 1)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="UTF-8">\n'
        "<title>Resonant Chat - gemma3:27b &amp; gemma3:27b</title>\n</head>\n<body>\n"
        '<div class="header">\n    <h1>Resonant Chat</h1>\n</div>\n\n<div class="system-prompt">\n'
        '    <div class="system-prompt-header">System Prompt</div>\n'
        '    <div class="system-prompt-content">You are an AI agent.</div>\n</div>\n\n'
        f'<div class="conversation">\n{blocks}\n</div>\n</body>\n</html>\n'
    )


def test_resonant_pages_round_trip(tmp_path):
    rng = random.Random(5)
    for k in range(40):
        messages = conversation(rng, ["Alice", "Bob"])
        path = tmp_path / f"resonant-chat-{k}.html"
        path.write_text(resonant_page(messages), encoding="utf-8")
        (run,) = read_runs(path)
        assert [(m.speaker, m.content) for m in run.messages] == messages
        assert {p["name"]: p["system"] for p in run.spec["participants"]} == {
            "Alice": "You are an AI agent.",
            "Bob": "You are an AI agent.",
        }


def test_openai_messages_round_trip(tmp_path):
    rng = random.Random(3)
    for k in range(20):
        messages = conversation(rng, ["user", "assistant"])
        path = tmp_path / f"m{k}.json"
        body = [{"role": "system", "content": "sys"}] + [{"role": r, "content": c} for r, c in messages]
        path.write_text(json.dumps(body if k % 2 else {"messages": body}, ensure_ascii=k % 3 == 0), encoding="utf-8")
        (run,) = read_runs(path)
        assert [(m.speaker, m.content) for m in run.messages] == messages
