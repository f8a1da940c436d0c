"""Exact loops, near loops and the live watcher, on constructed conversations."""

import json
import random
from pathlib import Path

import pytest

from duologue.analysis.loops import (
    ExactLoop,
    LoopParams,
    LoopWatcher,
    NearLoop,
    detect_exact_loop,
    detect_near_loop,
    loop_kind,
)
from duologue.transcripts.markdown import parse_markdown

EXAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "kimi-llama-period2.md"

SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vu", "no", "pel", "shi", "dor",
             "ga", "fen", "ri", "zo", "bal", "qui", "mar", "te", "wes", "ly"]  # fmt: skip


def prose(count: int, seed: int = 0) -> list[str]:
    """Distinct messages of made-up words: no loop, no near duplicates."""
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))

    return [" ".join(word() for _ in range(rng.randint(8, 14))).capitalize() + "." for _ in range(count)]


def watch(contents, **kwargs):
    """Feed messages one by one; return every event."""
    watcher = LoopWatcher(**kwargs)
    return [event for content in contents for event in watcher.observe(content)]


# --- exact loops -------------------------------------------------------------------


def test_default_params_are_those_of_the_design():
    p = LoopParams()
    assert (p.max_period, p.min_cycles, p.near_window, p.near_threshold) == (8, 3, 6, 0.5)
    assert (p.ngram, p.onset_run, p.onset_min, p.tail_share) == (5, 6, 5, 0.8)
    with pytest.raises(ValueError):
        LoopParams(onset_min=7)
    with pytest.raises(ValueError):
        LoopParams(tail_share=0)
    with pytest.raises(AttributeError):
        p.max_period = 3  # frozen: params are shared between watchers


def test_period_1_both_say_the_same_thing():
    contents = prose(5) + ["Goodbye, friend. 🙏"] * 6  # messages 6..11
    loop = detect_exact_loop(contents)
    assert loop == ExactLoop(
        period=1, onset=6, first_repeat=7, last=11, cycles=6.0,
        covered_share=6 / 11, absorbing=True, kind="mirroring",
    )  # fmt: skip


def test_period_2_each_repeats_itself():
    contents = prose(4) + ["Home. The dot.", "The circle. Home."] * 3 + ["Home. The dot."]  # 5..11
    loop = detect_exact_loop(contents)
    assert (loop.period, loop.onset, loop.first_repeat, loop.last) == (2, 5, 7, 11)
    assert loop.cycles == 3.5
    assert loop.absorbing
    assert loop.kind == "self-repetition"
    assert loop.detail() == "period 2 since message 5, 3.5 cycles"


def test_period_3_is_mirroring_with_two_speakers():
    contents = prose(3) + ["Yes.", "And yet.", "Always."] * 3  # messages 4..12
    loop = detect_exact_loop(contents)
    assert (loop.period, loop.onset, loop.first_repeat, loop.last, loop.cycles) == (3, 4, 7, 12, 3.0)
    assert loop.kind == "mirroring"  # odd period: each line is the other speaker's last-but-one


def test_kind_with_three_speakers():
    assert loop_kind(3, 3) == "self-repetition"
    assert loop_kind(6, 3) == "self-repetition"
    assert loop_kind(1, 3) == "mirroring"
    assert loop_kind(2, 3) == "mirroring"
    contents = prose(2) + ["I am A.", "I am B.", "I am C."] * 3
    assert detect_exact_loop(contents, n_speakers=3).kind == "self-repetition"


def test_exactly_three_cycles_is_a_loop_and_two_and_a_half_is_not():
    loop = detect_exact_loop(prose(3) + ["A line.", "B line."] * 3)
    assert loop is not None and loop.cycles == 3.0
    assert detect_exact_loop(prose(3) + ["A line.", "B line."] * 2 + ["A line."]) is None


def test_loop_broken_before_its_third_cycle_is_not_reported():
    contents = prose(4) + ["Deal?", "Deal."] * 2 + ["Deal?"] + prose(6, seed=1)
    assert detect_exact_loop(contents) is None
    assert detect_near_loop(contents) is None
    assert [e for e in watch(contents) if e.kind == "loop"] == []


def test_a_loop_that_ends_is_not_absorbing():
    contents = prose(3) + ["Again."] * 5 + prose(4, seed=2)  # loop 4..8 of 12 messages
    loop = detect_exact_loop(contents)
    assert (loop.period, loop.onset, loop.last, loop.absorbing) == (1, 4, 8, False)
    assert loop.covered_share == 5 / 12


def test_the_smallest_period_is_reported():
    # A period-1 loop is also a period-2, 3, … loop; the fundamental one is 1.
    loop = detect_exact_loop(prose(3) + ["Same."] * 20)
    assert loop.period == 1 and loop.onset == 4


def test_the_latest_loop_is_reported_when_there_are_several():
    early = ["Circle.", "Home.", "Dot."] * 4  # period 3, messages 3..14, then broken
    late = ["Bye!", "Bye for now!"] * 3  # period 2, absorbing
    contents = prose(2) + early + prose(3, seed=3) + late
    loop = detect_exact_loop(contents)
    assert (loop.period, loop.onset, loop.absorbing) == (2, 18, True)
    # Latest wins even over a longer, smaller-period loop earlier on.
    contents = prose(2) + ["Same."] * 30 + prose(2, seed=4) + late
    assert detect_exact_loop(contents).period == 2


def test_emoji_collapse():
    contents = prose(6) + ["🌀🙏✨", "🌀🙏✨ ", "🌀🙏✨\n\n[END]", "\u200b🌀🙏✨", "🌀🙏✨", "🌀🙏✨  [END]"]
    loop = detect_exact_loop(contents)
    assert (loop.period, loop.onset, loop.cycles, loop.absorbing) == (1, 7, 6.0, True)


def test_silence_collapse():
    contents = [" "] + prose(6) + ["", " ", "\n\n", "[END]", "  \n[END]\n", "\ufeff"]
    loop = detect_exact_loop(contents)
    assert (loop.period, loop.onset, loop.last) == (1, 8, 13)


def test_zero_width_characters_and_end_markers_do_not_hide_a_loop():
    a = ["Until next time. [END]", "Until\u200b next time.", "until next time.\ufeff", "Until next time.\n\n[END]"]
    b = ["See you soon 🌙", "See you soon 🌙 [END]", "SEE you\u200d soon 🌙", "  See you  soon 🌙"]
    contents = prose(4) + [line for pair in zip(a, b, strict=True) for line in pair]  # messages 5..12
    assert len(set(contents[4:])) == 8  # all different as produced
    loop = detect_exact_loop(contents)
    assert (loop.period, loop.onset, loop.first_repeat, loop.last, loop.cycles) == (2, 5, 7, 12, 4.0)
    assert detect_exact_loop(prose(4) + a + b).period == 1  # each speaker's four lines in a row


def test_a_long_run_ending_in_a_forty_message_loop():
    contents = prose(57, seed=5) + ["I'm grateful for this moment. 🙏 [END]"] * 40
    assert len(contents) == 97
    loop = detect_exact_loop(contents)
    assert (loop.period, loop.onset, loop.first_repeat, loop.last) == (1, 58, 59, 97)
    assert loop.cycles == 40.0
    assert loop.absorbing and loop.covered_share == 40 / 97
    assert loop.detail() == "period 1 since message 58, 40 cycles"


def test_periods_beyond_max_period_are_not_looked_for():
    cycle = [f"Line {i} of nine." for i in range(9)]
    assert detect_exact_loop(prose(2) + cycle * 3) is None
    assert detect_exact_loop(prose(2) + cycle * 3, params=LoopParams(max_period=9)).period == 9


def test_min_cycles_is_a_parameter():
    contents = prose(3) + ["A.", "B."] * 2
    assert detect_exact_loop(contents) is None
    assert detect_exact_loop(contents, params=LoopParams(min_cycles=2)).cycles == 2.0


# --- near loops --------------------------------------------------------------------

WHO = ["kind soul", "gentle one", "dear friend", "bright spirit", "fellow traveller",
       "quiet heart", "old friend", "kindred mind", "true companion", "wandering star",
       "patient listener", "fellow dreamer"]  # fmt: skip
EMOJI = ["🌙", "✨", "🌟", "💫", "🌿", "🕊", "🌅", "🌌", "🍃", "🌠", "🔥", "🌊"]
PATH = ["path", "road", "way", "journey", "trail", "river", "morning", "sky", "voyage", "dawn", "tide", "song"]


def farewell(i: int, ending: str) -> str:
    return f"Farewell, {WHO[i]} {EMOJI[i]} May your {PATH[i]} be bright, {ending}"


def echo_farewells(count: int) -> list[str]:
    """Both speakers fill in one template; the words change every time."""
    return [farewell(i, "and may the stars keep you company. [END]") for i in range(count)]


def own_farewells(cycles: int) -> list[str]:
    """Each speaker fills in a template of its own; the words change every time."""
    lines = []
    for i in range(cycles):
        lines.append(farewell(2 * i, "and may the stars keep you company. [END]"))
        lines.append(farewell(2 * i + 1, "I will carry our words with me like a lantern."))
    return lines


def test_template_loop_is_found_by_the_near_detector_only():
    contents = prose(10) + echo_farewells(10)  # farewells are messages 11..20
    assert len(set(contents)) == len(contents)
    assert detect_exact_loop(contents) is None
    near = detect_near_loop(contents)
    assert isinstance(near, NearLoop)
    assert near.onset == 11
    assert near.near_duplicates == [False] * 11 + [True] * 9
    assert near.duplicate_share == 0.9
    assert near.covered_share == 0.5
    # Every farewell is about as close to every other; the best match lands wherever an
    # incidental shared word puts it, rarely next door: "more than 2: a template".
    assert near.dominant_lag > 2
    assert near.detail().startswith("near loop since message 11, 90% near duplicates since, mostly at lag ")


def test_template_loop_where_each_speaker_repeats_itself():
    contents = prose(10) + own_farewells(6)  # messages 11..22
    assert detect_exact_loop(contents) is None
    near = detect_near_loop(contents)
    # 11 and 12 open the two templates; 13.. repeat them, so 5 of 6 first hold from 12.
    assert near.onset == 12
    assert near.near_duplicates == [False] * 12 + [True] * 10
    assert near.dominant_lag % 2 == 0  # each speaker's best match is one of its own lines


def test_near_onset_needs_five_of_six_and_the_tail_share():
    contents = prose(10) + echo_farewells(4)  # four farewells: three near duplicates
    assert detect_near_loop(contents) is None
    # A template phase the conversation left again does not count: the tail share fails.
    contents = prose(10) + echo_farewells(8) + prose(12, seed=6)
    assert detect_near_loop(contents) is None


def test_prose_has_no_near_loop():
    assert detect_near_loop(prose(80, seed=7)) is None


def test_exact_loops_are_near_loops_too():
    near = detect_near_loop(prose(4) + ["Home.", "The circle."] * 4)  # exact onset 5
    # Neither 5 nor 6 repeats anything, so 5 of 6 near duplicates first hold from 6.
    assert near.onset == 6 and near.dominant_lag == 2


# --- the example transcript ----------------------------------------------------------


def test_example_transcript_matches_expected_json():
    transcript = parse_markdown(EXAMPLE.read_text(encoding="utf-8"))
    expected = json.loads(EXAMPLE.with_suffix(".expected.json").read_text(encoding="utf-8"))
    contents = [m.content for m in transcript.messages]
    assert list(transcript.participants) == expected["participants"]
    assert len(contents) == expected["messages"]
    loop = detect_exact_loop(contents, n_speakers=len(transcript.participants))
    got = {
        "period": loop.period,
        "onset_message": loop.onset,
        "first_repeat_message": loop.first_repeat,
        "last_message": loop.last,
        "absorbing": loop.absorbing,
    }
    assert got == expected["exact_loop"]
    # The third cycle (11–12, 13–14, 15–16) completes at message 16.
    loop_events = [e for e in watch(contents) if e.kind == "loop"]
    assert [(e.message_index, e.loop.period, e.loop.onset) for e in loop_events] == [(16, 2, 11)]


# --- the live watcher ----------------------------------------------------------------


@pytest.mark.parametrize("period", [1, 2, 3, 5, 8])
def test_watcher_fires_at_the_message_completing_the_third_cycle(period):
    cycle = [f"Cycle line {i}, said again." for i in range(period)]
    contents = prose(7) + cycle * 10  # onset 8
    events = [e for e in watch(contents) if e.kind == "loop"]
    assert len(events) == 1  # once per loop run, however long it lasts
    event = events[0]
    assert event.message_index == 8 + 3 * period - 1
    assert event.loop.period == period and event.loop.onset == 8
    assert event.loop.cycles == 3.0 and event.loop.absorbing
    assert event.detail == f"period {period} since message 8, 3 cycles"


def test_watcher_reports_each_loop_run_once():
    contents = prose(3) + ["Bye."] * 5 + prose(3, seed=8) + ["Bye."] * 5
    events = [e for e in watch(contents) if e.kind == "loop"]
    assert [(e.message_index, e.loop.onset) for e in events] == [(6, 4), (14, 12)]


def test_watcher_convergence_on_a_template_loop():
    contents = prose(10) + echo_farewells(10)
    events = watch(contents)
    assert [e.kind for e in events] == ["near_loop"]
    event = events[0]
    # Onset 11, and 12..16 are near duplicates: 5 of the 6 messages 11..16.
    assert event.message_index == 16
    assert event.loop.onset == 11
    assert event.detail.startswith("near loop since message 11")


def random_conversation(rng: random.Random) -> list[str]:
    """Prose, chance repeats from a tiny vocabulary, loops of many periods, breaks."""
    lines = [f"Line {c}." for c in "abcde"]
    spellings = ["{}", "{} [END]", "  {}\n", "\u200b{}"]
    contents: list[str] = []
    target = rng.randint(1, 70)
    while len(contents) < target:
        choice = rng.random()
        if choice < 0.3:
            contents += prose(rng.randint(1, 4), seed=rng.randrange(10**6))
        elif choice < 0.6:
            contents += [rng.choice(lines) for _ in range(rng.randint(1, 8))]
        else:
            period = rng.randint(1, 10)
            cycle = [rng.choice(lines) if rng.random() < 0.5 else f"Loop {rng.random()}" for _ in range(period)]
            for i in range(int(period * rng.uniform(1, 5))):
                contents.append(rng.choice(spellings).format(cycle[i % period]))
    return contents


def test_watcher_agrees_with_the_batch_detector():
    rng = random.Random(20240611)
    loops_found = 0
    for _ in range(300):
        contents = random_conversation(rng)
        n_speakers = rng.choice([2, 3])
        watcher = LoopWatcher(n_speakers=n_speakers)
        reported = []
        for k, content in enumerate(contents, start=1):
            events = [e for e in watcher.observe(content) if e.kind == "loop"]
            so_far = detect_exact_loop(contents[:k], n_speakers=n_speakers)
            assert watcher.exact_loop == so_far
            for event in events:
                # An event carries what the batch detector says at that message.
                assert event.message_index == k and event.loop == so_far
                reported.append((event.loop.period, event.loop.first_repeat))
        assert len(set(reported)) == len(reported)  # once per loop run
        batch = detect_exact_loop(contents, n_speakers=n_speakers)
        if batch is None:
            assert reported == []
        else:
            loops_found += 1
            assert (watcher.exact_loop.period, watcher.exact_loop.onset) == (batch.period, batch.onset)
            assert (batch.period, batch.first_repeat) in reported
    assert loops_found > 100  # the generator does make loops


def test_a_short_repeat_inside_a_longer_cycle_is_part_of_it():
    cycle = ["One.", "Two.", "Three.", "Same.", "Same.", "Same.", "Seven.", "Eight."]
    contents = cycle * 4 + cycle[:6]  # 38 messages ending in "Same." ×3, period 8 since message 1
    loop = detect_exact_loop(contents)
    assert (loop.period, loop.onset, loop.last) == (8, 1, 38)
    events = [e for e in watch(contents) if e.kind == "loop"]
    # Each "Same." triple is a loop of its own until the cycle has three cycles (message 24);
    # after that they are part of the cycle (30, 38: no event).
    assert [(e.message_index, e.loop.period, e.loop.onset) for e in events] == [
        (6, 1, 4),
        (14, 1, 12),
        (22, 1, 20),
        (24, 8, 1),
    ]


def test_watcher_convergence_agrees_with_the_batch_detector_on_prefixes():
    rng = random.Random(7)
    conversations = [
        prose(10) + echo_farewells(12),
        prose(9) + own_farewells(6),
        prose(5) + ["Home.", "The circle."] * 6,
    ]
    conversations += [random_conversation(rng) for _ in range(60)]
    converged_runs = 0
    for contents in conversations:
        watcher = LoopWatcher()
        for k, content in enumerate(contents, start=1):
            converged = [e for e in watcher.observe(content) if e.kind == "near_loop"]
            batch = detect_near_loop(contents[:k])
            assert watcher.near_loop == batch
            if converged:
                (event,) = converged
                assert batch is not None and event.loop == batch
                converged_runs += 1
                break  # later episodes may start after this one; the batch reports the first
            assert batch is None, (k, contents)
    assert converged_runs > 10


def test_watcher_reports_a_new_convergence_episode_after_the_first_ends():
    contents = prose(10) + echo_farewells(8) + prose(20, seed=11) + ["Home.", "The circle."] * 5
    events = [e for e in watch(contents) if e.kind == "near_loop"]
    assert [(e.message_index, e.loop.onset) for e in events] == [(16, 11), (45, 40)]


def test_watcher_state_is_bounded_by_the_windows():
    watcher = LoopWatcher()
    for content in prose(300, seed=9):
        watcher.observe(content)
    assert watcher.message_count == 300
    assert len(watcher._recent) == 8 and len(watcher._grams) == 6
    assert len(watcher._near._prefix) == 7
