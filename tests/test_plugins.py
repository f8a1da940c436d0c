"""Detectors and export formats plug in without editing duologue: the registries and their settings."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from duologue import api
from duologue.detectors import Detector, detectors, register_detector, unregister_detector
from duologue.errors import DuologueError
from duologue.exports import RunFormat, register_run_format, run_formats, unregister_run_format
from duologue.spec import spec_from_dict
from duologue.spec_checks import entering_spec
from duologue.stopping import WatchEvent


@dataclass(frozen=True)
class ShoutParams:
    share: float = 0.6  # capital letters among the letters that make a message a shout

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError("share must be in (0, 1]")


class Shouting:
    def __init__(self, params: ShoutParams) -> None:
        self.params = params

    def observe(self, message):
        letters = [c for c in message.content if c.isalpha()]
        if letters and sum(c.isupper() for c in letters) / len(letters) >= self.params.share:
            return [WatchEvent(kind="shouting", detail=f"message {message.index} shouts", message_index=message.index)]
        return []


@pytest.fixture
def shouting():
    register_detector(Detector("shouting", make=lambda spec, params: Shouting(params), params=ShoutParams))
    try:
        yield
    finally:
        unregister_detector("shouting")


def spec(**extra):
    return spec_from_dict(
        {
            "opener": "hello there",
            "max_messages": 8,
            "on_loop": "continue",
            "participants": [{"name": "a", "model": "scripted/a"}, {"name": "b", "model": "scripted/b"}],
            **extra,
        }
    )


def test_builtin_detectors_are_found_in_their_package():
    assert {"loops", "semantic"} <= set(detectors())


def test_a_detector_of_ones_own_stops_a_run_by_its_table(tmp_path, scripted_models, shouting):
    scripted_models.reply = lambda n, view: f"calm words {n}" if n < 3 else f"WHY ARE WE SHOUTING {n}"
    run = api.run_conversation(spec(detection={"shouting": {"share": 0.9, "on": "stop"}}), db=tmp_path / "d.db")
    assert run.stop_reason == "shouting" and run.stop_detail.endswith("shouts")
    events = [e for e in api.run_events(run.id, db=tmp_path / "d.db") if e["kind"] == "shouting"]
    assert len(events) == 1 and events[0]["message_index"] == len(run.messages)


def test_flag_records_and_continue_silences(tmp_path, scripted_models, shouting):
    scripted_models.reply = lambda n, view: "LOUD"
    flagged = api.run_conversation(spec(detection={"shouting": {}}), db=tmp_path / "d.db")  # on: flag by default
    assert flagged.stop_reason == "max_messages"
    assert sum(e["kind"] == "shouting" for e in api.run_events(flagged.id, db=tmp_path / "d.db")) == 7
    quiet = api.run_conversation(spec(detection={"shouting": {"on": "continue"}}), db=tmp_path / "d.db")
    assert not any(e["kind"] == "shouting" for e in api.run_events(quiet.id, db=tmp_path / "d.db"))


@pytest.mark.parametrize(
    "table, needle",
    [
        ({"share": 2}, "shouting: share must be in (0, 1]"),
        ({"loudness": 1}, "shouting.loudness: unknown field"),
        ({"on": "yell"}, "shouting.on: expected one of stop, flag, continue"),
    ],
)
def test_a_detectors_bad_settings_are_one_line_errors(shouting, table, needle):
    s = spec(detection={"shouting": table})  # a spec is data: validating it asks no installed detector
    with pytest.raises(DuologueError) as err:
        entering_spec(s)  # where it enters a run (the CLI, the API, a batch)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_detector_table_is_an_error():
    with pytest.raises(DuologueError, match="nobody"):
        entering_spec(spec(detection={"nobody": {"on": "stop"}}))


def test_an_export_format_of_ones_own(tmp_path, scripted_models):
    assert {"md", "json"} <= set(run_formats())
    scripted_models.reply = lambda n, view: f"line {n}"
    run = api.run_conversation(spec(max_messages=3), db=tmp_path / "d.db")
    register_run_format(
        RunFormat(
            "speakers",
            "txt",
            "text/plain",
            "who spoke, in order",
            lambda run, analysis, events: "\n".join(m.speaker for m in run.messages) + "\n",
        )
    )
    try:
        assert api.export_run(run.id, "speakers", db=tmp_path / "d.db") == "a\nb\na\n"
    finally:
        unregister_run_format("speakers")
    with pytest.raises(DuologueError, match="unknown export format 'speakers'"):
        api.export_run(run.id, "speakers", db=tmp_path / "d.db")


def test_the_json_export_carries_the_events(tmp_path, scripted_models):
    scripted_models.reply = lambda n, view: "same"
    run = api.run_conversation(spec(max_messages=8, on_loop="stop"), db=tmp_path / "d.db")
    data = json.loads(api.export_run(run.id, "json", db=tmp_path / "d.db"))
    assert run.stop_reason == "loop"
    assert [e["kind"] for e in data["events"]][:1] == ["loop"] and data["events"][0]["message_index"] >= 4


def bare_spec(**extra):
    """A spec that says nothing of its detectors but what it is given."""
    return spec_from_dict(
        {"participants": [{"name": "a", "model": "scripted/a"}, {"name": "b", "model": "scripted/b"}], **extra}
    )


def test_built_in_detectors_take_the_same_tables_as_a_plugins(tmp_path, scripted_models):
    """[detection.<name>] with `on` and thresholds configures the built-in detectors as it does a plugin's;
    the stored spec holds the older spelling, so runs made before read the same."""
    s = bare_spec(
        max_messages=12,
        detection={
            "loop": {"on": "flag", "max_period": 4},
            "near_loop": {"on": "continue", "near_window": 3},
            "attractor": {"on": "continue", "theme_threshold": 0.4},
        },
    )
    assert (s.on_loop, s.on_near_loop, s.on_attractor, s.on_convergence) == ("flag", "continue", "continue", "flag")
    assert s.detection.attractor.theme_threshold == 0.4
    assert (s.detection.max_period, s.detection.near_window) == (4, 3)
    stored = s.model_dump(mode="json")
    assert "loop" not in stored["detection"] and stored["on_loop"] == "flag"
    # A loop flagged, not stopped: the scripted model says the same thing every time.
    scripted_models.reply = lambda n, view: "the same words again"
    run = api.run_conversation(s, db=tmp_path / "d.db")
    assert run.stop_reason == "max_messages" and len(run.messages) == 12
    assert [e["kind"] for e in api.run_events(run.id, db=tmp_path / "d.db")].count("loop") >= 1


# A value other than the default for each loop threshold, and the table that sets it.
LOOP_THRESHOLDS = {
    "max_period": (5, "loop"),
    "min_cycles": (4, "loop"),
    "near_window": (5, "near_loop"),
    "near_threshold": (0.6, "near_loop"),
    "ngram": (4, "near_loop"),
    "onset_run": (7, "near_loop"),
    "onset_min": (4, "near_loop"),
    "tail_share": (0.7, "near_loop"),
    "near_size_ratio": (0.4, "near_loop"),
}


def test_every_loop_threshold_is_set_by_its_detectors_table_and_no_other():
    from dataclasses import fields

    from duologue.analysis.loops import LoopParams

    assert sorted(LOOP_THRESHOLDS) == sorted(f.name for f in fields(LoopParams))
    for name, (value, table) in LOOP_THRESHOLDS.items():
        assert getattr(bare_spec(detection={table: {name: value}}).detection, name) == value
        other = "near_loop" if table == "loop" else "loop"
        with pytest.raises(DuologueError, match=f"detection.{other}.{name}: unknown field"):
            bare_spec(detection={other: {name: value}})


@pytest.mark.parametrize(
    ("detection", "top", "needle"),
    [
        ({"loop": {"on": "flag"}}, {"on_loop": "stop"}, "detection.loop.on and on_loop disagree"),
        ({"loop": {"near_window": 3}}, {}, "detection.loop.near_window: unknown field"),
        ({"near_loop": {"near_window": 3}, "near_window": 4}, {}, "detection.near_loop.near_window and detection"),
    ],
)
def test_a_table_and_an_older_key_that_disagree_are_one_line(detection, top, needle):
    with pytest.raises(DuologueError) as err:
        bare_spec(detection=detection, **top)
    assert needle in str(err.value) and "\n" not in str(err.value)
