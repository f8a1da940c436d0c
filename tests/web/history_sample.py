"""A store for the run page's Markdown, events and lineage: a run written in Markdown with every kind of
event the engine records, a fork of it and a fork of the fork, and Markdown carrying hostile payloads.

Events are stored as the engine and the context manager store them (the same kinds, details and data).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from duologue.records import Run
from duologue.store import Store

from .sample import add_run, spec

T0 = datetime(2026, 3, 16, 9, 0, 0, tzinfo=UTC)

MARKDOWN_RUN = "20260316-090000-500001"
FORK_RUN = "20260316-090000-500002"  # forked from MARKDOWN_RUN at message 4
GRANDCHILD_RUN = "20260316-090000-500003"  # forked from FORK_RUN at message 5
HOSTILE_MD_RUN = "20260316-090000-500004"

MARKDOWN = [
    " ",
    "Let us plan a *small* garden. What would you plant first?",
    "Three things, in this order:\n\n- **tomatoes**, for the summer\n- basil, beside them\n- a row of `beans`\n\n"
    "And a rule for watering:\n\n```\nif soil.dry():\n    water(litres=2)\n```",
    "> Tomatoes first.\n\nAgreed. Here is a table of when:\n\n| plant | month |\n|---|---|\n| tomatoes | May |\n"
    "| basil | June |\n\nSee [the almanac](https://example.org/almanac).",
    "Then *beans* in July. Line one\nline two, kept apart.",
    "Good. Anything else?",
    "No, that is the whole garden.",
]
SUMMARY = "alice and bob planned a garden: tomatoes, basil and beans; <b>water</b> when the soil is dry."

# Hostile payloads written as Markdown: every one must stay text.
HOSTILE_MD = [
    "[click for a prize](javascript:alert(1)) and *emphasis*",
    "<img src=x onerror=alert(1)> after **bold**",
    "- a list item <script>alert(1)</script>\n- [data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![an image](javascript:alert(1)) [vb](vbscript:msgbox(1)) <a href='javascript:alert(1)'>a tag</a>",
    "```html\n<script>alert(1)</script>\n```",
]

CHANGES = [{"at": 5, "participant": "bob", "temperature": 1.3, "system": "You are <b>terse</b>."}]


def _events(store: Store) -> None:
    add = store.add_event
    add(
        MARKDOWN_RUN,
        "window",
        message_index=2,
        detail="alice: 4096 tokens, KV cache 48 MiB",
        data={"participant": "alice", "window": 4096, "kv_bytes": 48 * 2**20, "run_needs": None},
    )
    add(
        MARKDOWN_RUN,
        "context",
        message_index=4,
        detail="messages 1–2 summarized (bob's request 3900 → 900 tokens of 4096)",
        data={
            "strategy": "summarize",
            "action": "summarize",
            "participant": "bob",
            "dropped": [1, 2],
            "cut": 2,
            "tokens_before": 3900,
            "tokens_after": 900,
            "window": 4096,
            "summary": SUMMARY,
            "summarizer": "local/smollm2",
        },
    )
    add(
        MARKDOWN_RUN,
        "injection",
        message_index=6,
        detail="gardener: Good. Anything else?",
        data={"source": "spec", "speaker": "gardener"},
    )
    add(
        MARKDOWN_RUN,
        "change",
        message_index=5,
        detail="bob: temperature 1.3, system You are <b>terse</b>.",
        data={"participant": "bob", "temperature": 1.3, "system": "You are <b>terse</b>."},
    )
    add(
        MARKDOWN_RUN,
        "near_loop",
        message_index=7,
        detail="similar messages since message 5, mostly at lag 2",
        data={"action": "flag", "onset": 5, "dominant_lag": 2, "similarity": 0.91},
    )
    add(
        MARKDOWN_RUN,
        "limits",
        message_index=7,
        detail="max_messages 6 → 7",
        data={"max_messages": 7},
    )


def build_history_store(db: Path) -> Path:
    with Store(db) as store:
        parent = add_run(
            store,
            MARKDOWN_RUN,
            ["alice", "bob"],
            ["local/smollm2", "local/smollm2"],
            MARKDOWN,
            started=T0,
            extra_spec={"changes": CHANGES},
        )
        _events(store)
        for run_id, parent_id, at, started in (
            (FORK_RUN, MARKDOWN_RUN, 4, T0 + timedelta(hours=1)),
            (GRANDCHILD_RUN, FORK_RUN, 5, T0 + timedelta(hours=2)),
        ):
            fork = Run(
                id=run_id,
                spec=spec(["alice", "bob"], ["local/smollm2", "local/smollm2"]),
                participants=["alice", "bob"],
                started_at=started,
                ended_at=started + timedelta(seconds=20),
                status="finished",
                stop_reason="max_messages",
                duologue_version="0.1.0",
                parent_run_id=parent_id,
                fork_at=at,
                messages=[m for m in parent.messages[:at]],
            )
            store.create_run(fork)
        add_run(
            store,
            HOSTILE_MD_RUN,
            ["mallory", "bob"],
            ["local/smollm2", "local/smollm2"],
            [" ", *HOSTILE_MD],
            started=T0 + timedelta(hours=3),
        )
    return db
