"""Invariants of the loop detectors, on conversations hypothesis makes up.

The example-based tests in test_loops.py pin the rules down on hand-made runs; these check that
the rules hold on any run: a planted cycle is found where it was planted, unrelated messages never
make an exact loop, the live watcher agrees with the batch detectors after every message, and
what `normalize` removes does not change any finding.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from duologue.analysis.loops import LoopParams, LoopWatcher, detect_exact_loop, detect_near_loop
from duologue.analysis.text import normalize

# Words that include non-ASCII letters, emoji and punctuation, so normalisation has work to do.
WORDS = ["the", "sky", "is", "blue", "Déjà", "vu", "naïve", "東京", "🌀", "🙏", "✨", "love", "eternal",
         "ok.", "yes!", "why?", "x", "über", "ÆON", "dance", "—", "42"]  # fmt: skip

messages = st.lists(st.sampled_from(WORDS), min_size=0, max_size=8).map(" ".join)


def distinct(n_min: int, n_max: int, avoid: frozenset[str] = frozenset()) -> st.SearchStrategy[list[str]]:
    """Lists of messages that differ from each other (and from `avoid`) once normalised."""
    return st.lists(
        messages.filter(lambda m: normalize(m) not in avoid), min_size=n_min, max_size=n_max, unique_by=normalize
    )


@st.composite
def planted_loops(draw):
    period = draw(st.integers(1, 8))
    cycles = draw(st.integers(3, 6))
    cycle = draw(distinct(period, period))
    prefix = draw(distinct(0, 10, avoid=frozenset(map(normalize, cycle))))
    return prefix, cycle, cycles


@settings(max_examples=150, deadline=None)
@given(planted_loops())
def test_a_planted_cycle_is_found_with_its_period_and_onset(planted):
    prefix, cycle, cycles = planted
    contents = prefix + cycle * cycles
    loop = detect_exact_loop(contents)
    assert loop is not None
    p = len(cycle)
    assert (loop.period, loop.onset, loop.first_repeat, loop.last) == (
        p,
        len(prefix) + 1,
        len(prefix) + 1 + p,
        len(contents),
    )
    assert loop.absorbing and loop.cycles == cycles


@settings(max_examples=100, deadline=None)
@given(planted_loops(), st.integers(0, 7))
def test_a_cycle_cut_short_of_three_is_no_loop(planted, missing):
    prefix, cycle, _ = planted
    # Two full cycles and part of a third: one message short of min_cycles at most.
    contents = prefix + (cycle * 3)[: 3 * len(cycle) - 1 - missing % len(cycle)]
    assert detect_exact_loop(contents) is None


@st.composite
def runs_and_unrelated_tails(draw):
    # Few distinct messages, so the run itself often holds loops.
    pool = draw(distinct(1, 4))
    run = draw(st.lists(st.sampled_from(pool), min_size=0, max_size=30))
    tail = draw(distinct(1, 8, avoid=frozenset(map(normalize, run))))
    return run, tail


@settings(max_examples=150, deadline=None)
@given(runs_and_unrelated_tails())
def test_appending_unrelated_distinct_messages_never_makes_an_exact_loop(drawn):
    run, tail = drawn
    before, after = detect_exact_loop(run), detect_exact_loop(run + tail)
    if before is None:
        assert after is None
    else:
        # The loop of the run is still the finding, no longer absorbing.
        assert after is not None
        assert (after.period, after.onset, after.first_repeat, after.last) == (
            before.period,
            before.onset,
            before.first_repeat,
            before.last,
        )
        assert not after.absorbing


# Runs that wander in and out of loops and near loops: a small pool of messages, some of them
# variations of one another, so exact repeats, near duplicates and fresh messages all occur.
@st.composite
def wandering_runs(draw):
    base = draw(distinct(2, 5))
    variants = [f"{m} {w}" for m in base for w in ("again", "🌀")]
    pool = base + variants
    blocks = draw(
        st.lists(
            st.one_of(
                st.lists(st.sampled_from(pool), min_size=1, max_size=4).flatmap(
                    lambda cycle: st.integers(1, 4).map(lambda k: cycle * k)
                ),
                st.lists(st.sampled_from(pool), min_size=1, max_size=5),
            ),
            min_size=1,
            max_size=8,
        )
    )
    return [m for block in blocks for m in block][:60]


small_params = st.builds(
    LoopParams,
    max_period=st.integers(1, 8),
    min_cycles=st.integers(2, 4),
    near_window=st.integers(1, 6),
    near_threshold=st.sampled_from([0.3, 0.5, 0.8, 1.0]),
    onset_run=st.integers(2, 6),
    onset_min=st.integers(1, 2),
    tail_share=st.sampled_from([0.5, 0.8, 1.0]),
)


@settings(max_examples=100, deadline=None)
@given(wandering_runs(), st.one_of(st.just(LoopParams()), small_params), st.integers(1, 3))
def test_the_watcher_agrees_with_the_batch_detectors_after_every_message(contents, params, n_speakers):
    watcher = LoopWatcher(n_speakers=n_speakers, params=params)
    converged = False  # a convergence event came already
    for t, content in enumerate(contents, 1):
        events = watcher.observe(content)
        prefix = contents[:t]
        exact = detect_exact_loop(prefix, n_speakers=n_speakers, params=params)
        near = detect_near_loop(prefix, params=params)
        assert watcher.message_count == t
        assert watcher.exact_loop == exact, t
        assert watcher.near_loop == near, t
        kinds = [e.kind for e in events]
        for event in events:
            assert event.message_index == t
            if event.kind == "loop":
                # The loop an event carries is the one the batch detector finds in the messages so far.
                assert event.loop == exact, t
                assert exact.last == t
            else:
                assert near is not None, t  # the onset rule holds for the messages so far
        if not converged:
            # The first convergence comes at the first message after which the batch detector finds a near
            # loop, and carries that near loop (later episodes may name a later onset than the batch one).
            assert ("near_loop" in kinds) == (near is not None), t
            if near is not None:
                assert next(e.loop for e in events if e.kind == "near_loop") == near, t
                converged = True


def disguise(text: str, data) -> str:
    """The same message as `normalize` sees it: other spacing, case, zero-width characters, end marker."""
    out = []
    for word in text.split():
        if word.isascii():
            word = "".join(c.upper() if data.draw(st.booleans()) else c.lower() for c in word)
        out.append(word)
    spaces = st.sampled_from([" ", "  ", "\t", "\n", " \u200b", "\u200b ", "\ufeff ", "\n\n "])
    joined = "".join(w + data.draw(spaces) for w in out[:-1]) + (out[-1] if out else "")
    lead, trail = data.draw(st.sampled_from(["", " ", "\n", "\u200b"])), data.draw(st.sampled_from(["", " ", "\n"]))
    end = data.draw(st.sampled_from(["", " [END]", "[END]", "\n[END]"]))
    return lead + joined + trail + end


@settings(max_examples=100, deadline=None)
@given(wandering_runs(), st.data())
def test_findings_ignore_what_normalize_removes(contents, data):
    disguised = [disguise(c, data) for c in contents]
    assert [normalize(c) for c in disguised] == [normalize(c) for c in contents]
    assert detect_exact_loop(disguised) == detect_exact_loop(contents)
    assert detect_near_loop(disguised) == detect_near_loop(contents)
    live, plain = LoopWatcher(), LoopWatcher()
    for d, c in zip(disguised, contents, strict=True):
        assert [(e.kind, e.message_index) for e in live.observe(d)] == [
            (e.kind, e.message_index) for e in plain.observe(c)
        ]
