import json
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from duologue.errors import TranscriptFormatError
from duologue.records import Message, Run
from duologue.transcripts import (
    parse_json,
    parse_jsonl,
    parse_markdown,
    render_json,
    render_jsonl,
    run_from_dict,
    run_from_transcript,
    run_to_dict,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "kimi-llama-period2.md"
UTC = UTC
PLUS_TWO = timezone(timedelta(hours=2))


def full_run(run_id: str = "2026-03-14-abc123") -> Run:
    """A run with every field set to something other than its default."""
    t0 = datetime(2026, 3, 14, 8, 26, 53, 123456, tzinfo=UTC)
    return Run(
        id=run_id,
        spec={
            "participants": [{"name": "kimi-k2", "model": "openrouter/moonshotai/kimi-k2", "temperature": 0.7}],
            "opener": " ",
            "max_messages": 20,
            "end_marker": "[END]",
            "nested": {"list": [1, 2.5, None, True, "✨"]},
        },
        participants=["kimi-k2", "llama-3.3-70b"],
        started_at=t0,
        ended_at=datetime(2026, 3, 14, 10, 27, 41, tzinfo=PLUS_TWO),
        status="interrupted",
        stop_reason="loop",
        stop_detail="exact loop, period 2, 3 cycles",
        duologue_version="0.1.0",
        parent_run_id="2026-03-13-parent",
        fork_at=7,
        experiment_id="exp-bliss",
        source="imports/kimi.md",
        source_hash="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        messages=[
            Message(1, "kimi-k2", " ", injected=True),
            Message(
                index=2,
                speaker="llama-3.3-70b",
                content="Hi 🌀\n\n---\n\nthere\u200b  \n[END]\u2028",
                model="openrouter/meta-llama/llama-3.3-70b-instruct",
                reasoning="they said nothing; say hello",
                started_at=t0 + timedelta(seconds=1),
                ended_at=t0 + timedelta(seconds=3, microseconds=5),
                ttft=0.25,
                latency=2.0,
                prompt_tokens=120,
                cached_tokens=100,
                completion_tokens=17,
                finish_reason="stop",
                attempts=3,
                injected=False,
            ),
        ],
    )


def format_error(text: str) -> str:
    with pytest.raises(TranscriptFormatError) as caught:
        parse_json(text)
    message = str(caught.value)
    assert message and "\n" not in message
    return message


def dict_error(d) -> str:
    with pytest.raises(TranscriptFormatError) as caught:
        run_from_dict(d)
    message = str(caught.value)
    assert message and "\n" not in message
    return message


def test_run_with_every_field_round_trips():
    run = full_run()
    assert run_from_dict(run_to_dict(run)) == run
    assert parse_json(render_json(run)) == run


def test_times_keep_their_zone_and_microseconds():
    back = parse_json(render_json(full_run()))
    assert back.ended_at.utcoffset() == timedelta(hours=2)
    assert back.started_at.microsecond == 123456
    assert back.messages[1].ended_at == full_run().messages[1].ended_at


def test_dict_has_every_field():
    d = run_to_dict(full_run())
    assert d["format"] == "duologue.run/1"
    assert d["title"] == "kimi-k2 ↔ llama-3.3-70b"
    # Every field but `events` (what an imported file held besides messages: stored as the run's events,
    # which an export carries as `events` when given them).
    assert {f.name for f in fields(Run)} - {"events"} <= d.keys()
    for m in d["messages"]:
        assert {f.name for f in fields(Message)} == m.keys()
    assert d["started_at"] == "2026-03-14T08:26:53.123456+00:00"
    assert d["messages"][1]["cached_tokens"] == 100
    assert "analysis" not in d
    json.dumps(d)  # plain JSON values only


def test_dict_does_not_share_the_spec():
    run = full_run()
    run_to_dict(run)["spec"]["nested"]["list"].append("mutated")
    assert "mutated" not in run.spec["nested"]["list"]


def test_analysis_is_carried():
    analysis = {"exact_loop": {"period": 2, "onset_message": 11}, "novelty": [1.0, 0.5]}
    text = render_json(full_run(), analysis)
    assert json.loads(text)["analysis"] == analysis
    assert parse_json(text) == full_run()  # the run reads back; analysis is extra


def test_render_json_layout():
    text = render_json(full_run())
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text.startswith('{\n  "format": "duologue.run/1",\n  "id": ')
    assert "🌀" in text and "↔" in text  # not \u-escaped


def test_parse_json_accepts_a_jsonl_line():
    line = render_jsonl([full_run()])
    assert line.count("\n") == 1
    assert parse_json(line) == full_run()


def test_jsonl_round_trip_of_many_runs():
    runs = [full_run("a"), full_run("b"), run_from_transcript(parse_markdown(EXAMPLE.read_text("utf-8")), "c")]
    text = render_jsonl(runs, analyses={"b": {"loops": []}})
    assert len(text.split("\n")) == 4
    assert len(text.splitlines()) > 3  # why the reader splits on "\n" only: U+2028 stays raw
    assert [json.loads(line).get("analysis") for line in text.split("\n") if line] == [None, {"loops": []}, None]
    assert parse_jsonl(text) == runs
    assert parse_jsonl("") == []


def test_imported_markdown_run_round_trips():
    run = run_from_transcript(parse_markdown(EXAMPLE.read_text("utf-8")), "imported", source=str(EXAMPLE))
    assert parse_json(render_json(run)) == run


def test_file_from_before_a_field_existed_still_loads():
    d = run_to_dict(full_run())
    for m in d["messages"]:
        del m["cached_tokens"], m["attempts"]
    del d["experiment_id"], d["source"]
    run = run_from_dict(d)
    assert run.messages[1].cached_tokens is None and run.messages[1].attempts == 1
    assert run.experiment_id is None and run.source is None


def test_float_fields_accept_whole_numbers():
    d = run_to_dict(full_run())
    d["messages"][1]["latency"] = 2
    assert run_from_dict(d).messages[1].latency == 2.0


# -- malformed input ----------------------------------------------------------


def broken(change) -> dict:
    d = run_to_dict(full_run())
    change(d)
    return d


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: d.pop("format"), "'format' is None, expected 'duologue.run/1'"),
        (lambda d: d.update(format="duologue.run/2"), "'format' is 'duologue.run/2', expected 'duologue.run/1'"),
        (lambda d: d.pop("id"), "run: missing 'id'"),
        (lambda d: d.pop("started_at"), "run: missing 'started_at'"),
        (lambda d: d.update(id=None), "run.id: must not be null"),
        (lambda d: d.update(started_at="yesterday"), "run.started_at: 'yesterday' is not an ISO-8601 time"),
        (lambda d: d.update(started_at="2026-03-14T08:26"), "run.started_at: '2026-03-14T08:26' has no time zone"),
        (lambda d: d.update(participants="kimi-k2"), "run.participants: expected list, got str 'kimi-k2'"),
        (lambda d: d.update(participants=["a", 2]), "run.participants[1]: expected str, got int 2"),
        (lambda d: d.update(spec=[]), "run.spec: expected dict, got list []"),
        (lambda d: d.update(fork_at="7"), "run.fork_at: expected int or null, got str '7'"),
        (lambda d: d.update(fork_at=True), "run.fork_at: expected int or null, got bool True"),
        (lambda d: d.update(messages={}), "run.messages: expected a list"),
        (lambda d: d["messages"].append("hi"), "messages[2]: expected a JSON object"),
        (lambda d: d["messages"][0].pop("content"), "messages[0]: missing 'content'"),
        (lambda d: d["messages"][1].update(index=2.0), "messages[1].index: expected int, got float 2.0"),
        (lambda d: d["messages"][1].update(ttft="fast"), "messages[1].ttft: expected float or null, got str 'fast'"),
        (lambda d: d["messages"][1].update(injected=0), "messages[1].injected: expected bool, got int 0"),
    ],
)
def test_invalid_fields(change, expected):
    assert dict_error(broken(change)) == expected


def test_not_an_object():
    assert dict_error([1, 2]) == "expected a JSON object for a run, got list"
    assert format_error("[]") == "expected a JSON object for a run, got list"


def test_invalid_json():
    assert format_error("") == "empty file: expected a JSON object for a run"
    assert format_error('{\n  "format": "duologue.run/1",\n  oops\n}').startswith("line 3: invalid JSON")
    assert format_error("\x00\xff\x89PNG garbage").startswith("line 1: invalid JSON")


def test_several_runs_given_to_parse_json():
    assert format_error(render_jsonl([full_run("a"), full_run("b")])) == (
        "line 2: more than one run; read JSONL with parse_jsonl"
    )


def test_jsonl_errors_name_the_line():
    text = render_jsonl([full_run("a")]) + "{oops\n"
    with pytest.raises(TranscriptFormatError, match=r"^line 2: invalid JSON"):
        parse_jsonl(text)
    text = render_jsonl([full_run("a")]) + json.dumps({"format": "duologue.run/1"}) + "\n"
    with pytest.raises(TranscriptFormatError, match=r"^line 2: run: missing 'id'$"):
        parse_jsonl(text)
