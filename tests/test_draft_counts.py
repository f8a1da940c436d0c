"""Lookup decoding's per-message counts (draft_tokens, accepted_tokens; migration 008): stored, read back,
and shown on the message's meta line."""

from __future__ import annotations

from dataclasses import replace

from click.testing import CliRunner

from duologue.cli import cli
from duologue.records import Message
from duologue.store import Store
from duologue.terminal import format_message_meta
from helpers import make_run


def test_draft_counts_are_stored_read_back_and_shown(tmp_path):
    path = tmp_path / "d.db"
    run = make_run("drafty", ["hello there", "hello again"])
    run.messages[1] = replace(run.messages[1], completion_tokens=7, draft_tokens=5, accepted_tokens=3)
    with Store(path) as store:
        store.create_run(run)
        # A message added as a run goes (the engine's path) keeps them too.
        store.add_message(
            "drafty", Message(index=3, speaker="ada", content="and again", draft_tokens=9, accepted_tokens=0)
        )
        back = store.get_run("drafty")
    first, second, third = back.messages
    assert (first.draft_tokens, first.accepted_tokens) == (None, None)  # not drafted: nothing made up
    assert (second.draft_tokens, second.accepted_tokens) == (5, 3)
    assert (third.draft_tokens, third.accepted_tokens) == (9, 0)

    assert "drafts" not in format_message_meta(first)
    assert format_message_meta(second) == "completion 7 · drafts 3/5 accepted"
    assert "drafts 0/9 accepted" in format_message_meta(third)

    out = CliRunner().invoke(cli, ["show", "drafty", "--db", str(path)])
    assert out.exit_code == 0, out.output
    assert "drafts 3/5 accepted" in out.output and "drafts 0/9 accepted" in out.output
