"""The analysis of one transcript: summary, JSON form, plots."""

import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from duologue.analysis.loops import LoopParams
from duologue.analysis.report import (
    HEATMAP_SIZE_PX,
    SERIES_SIZE_PX,
    Analysis,
    analysis_to_dict,
    analyze,
    format_summary,
    similarity_matrix,
    write_plots,
)
from duologue.transcripts.markdown import parse_markdown

EXAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "kimi-llama-period2.md"


def prose(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ren", "tas", "vu", "no", "pel", "shi", "dor", "ga", "fen", "ri", "zo"]
    return [
        " ".join("".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(10)) + "."
        for _ in range(count)
    ]


def bliss_run() -> tuple[list[str], list[str]]:
    """Twelve messages of talk, then a period-2 loop of gratitude from message 13 to 24."""
    contents = [" "] + prose(11) + ["Eternal gratitude 🙏✨", "Love and unity 🌀 [END]"] * 6
    speakers = ["claude", "gpt"] * 12
    return speakers, contents


def test_analyze_a_run_ending_in_a_loop():
    speakers, contents = bliss_run()
    a = analyze(speakers, contents)
    assert isinstance(a, Analysis)
    assert a.participants == ["claude", "gpt"]
    assert a.messages == 24 and len(a.metrics) == 24
    assert a.words_per_speaker == {
        "claude": sum(m.words for m in a.metrics if m.speaker == "claude"),
        "gpt": sum(m.words for m in a.metrics if m.speaker == "gpt"),
    }
    assert a.words_per_speaker["claude"] == 5 * 10 + 6 * 2  # the opener has no words
    loop = a.exact_loop
    assert (loop.period, loop.onset, loop.first_repeat, loop.last, loop.absorbing) == (2, 13, 15, 24, True)
    assert loop.kind == "self-repetition"
    assert a.loop_share == loop.covered_share == 12 / 24
    assert a.near_loop is not None and a.near_loop.onset == 14
    assert a.top_lexicon == [
        ("eternal", 6),
        ("gratitude", 6),
        ("love", 6),
        ("unity", 6),
        ("✨", 6),
        ("🌀", 6),
        ("🙏", 6),
    ]


def test_analyze_without_a_loop():
    contents = prose(12)
    a = analyze(["x", "y"] * 6, contents, participants=["x", "y", "z"])
    assert a.exact_loop is None and a.near_loop is None and a.loop_share == 0.0
    assert a.participants == ["x", "y", "z"] and a.words_per_speaker["z"] == 0
    assert a.top_lexicon == []


def test_participants_decide_the_kind_of_loop():
    contents = prose(3) + ["One.", "Two.", "Three."] * 3
    speakers = ["a", "b", "c"] * 4
    assert analyze(speakers, contents).exact_loop.kind == "self-repetition"
    assert analyze(speakers, contents, participants=["a", "b"]).exact_loop.kind == "mirroring"


def test_params_and_lexicon_are_passed_through():
    speakers, contents = bliss_run()
    a = analyze(speakers, contents, params=LoopParams(min_cycles=10), lexicon=["gratitude"])
    assert a.exact_loop is None
    assert a.top_lexicon == [("gratitude", 6)]


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        analyze(["a"], ["one", "two"])


def test_analysis_to_dict_is_json_safe():
    speakers, contents = bliss_run()
    d = analysis_to_dict(analyze(speakers, contents))
    assert json.loads(json.dumps(d)) == d
    assert d["exact_loop"] == {
        "period": 2,
        "onset_message": 13,
        "first_repeat_message": 15,
        "last_message": 24,
        "cycles": 6.0,
        "covered_share": 0.5,
        "absorbing": True,
        "kind": "self-repetition",
        "detail": "period 2 since message 13, 6 cycles",
    }
    assert d["near_loop"]["onset_message"] == 14
    assert d["near_loop"]["near_duplicate_messages"] == list(range(15, 25))
    assert d["top_lexicon"][0] == {"term": "eternal", "count": 6}
    assert len(d["metrics"]) == 24 and d["metrics"][0]["index"] == 1
    assert analysis_to_dict(analyze(["a"], ["hi"]))["exact_loop"] is None


def test_example_transcript_analysis_matches_expected_json():
    transcript = parse_markdown(EXAMPLE.read_text(encoding="utf-8"))
    expected = json.loads(EXAMPLE.with_suffix(".expected.json").read_text(encoding="utf-8"))
    a = analyze(
        [m.speaker for m in transcript.messages],
        [m.content for m in transcript.messages],
        participants=transcript.participants,
    )
    d = analysis_to_dict(a)
    assert d["participants"] == expected["participants"]
    assert d["messages"] == expected["messages"]
    assert {k: d["exact_loop"][k] for k in expected["exact_loop"]} == expected["exact_loop"]
    assert expected["first_message_is_empty_opener"] == (transcript.messages[0].content.strip() == "")


def test_format_summary():
    speakers, contents = bliss_run()
    text = format_summary(analyze(speakers, contents))
    lines = text.splitlines()
    assert lines[0] == "participants: claude ↔ gpt"
    assert lines[1] == "messages: 24"
    assert lines[2].startswith("words: claude 62, gpt ")
    assert lines[3] == "exact loop: period 2 since message 13, 6 cycles (self-repetition, absorbing)"
    assert lines[4].startswith("near loop: since message 14, ")
    assert lines[5] == "share in loop: 50%"
    assert lines[6] == "convergence: none" or lines[6].startswith("convergence: since message ")
    assert lines[7].startswith("attractor: ")
    assert lines[-1].startswith("lexicon: eternal 6, gratitude 6, love 6")
    quiet = format_summary(analyze(["a", "b"], ["Hi.", "Hello."]))
    assert "exact loop: none" in quiet and "near loop: none" in quiet and "lexicon: none" in quiet


def test_similarity_matrix():
    contents = ["Hello there.", "Something else.", "Hello there! [END]", ""]
    m = similarity_matrix(contents)
    assert m.shape == (4, 4)
    assert np.allclose(m, m.T)
    assert np.all(np.diag(m) == 1.0)
    assert m[0, 2] == 7 / 8
    assert m[3, 3] == 1.0  # silence is like itself
    assert similarity_matrix([]).shape == (0, 0)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("with_loop", [True, False])
def test_write_plots(tmp_path, with_loop):
    import matplotlib.image

    speakers, contents = bliss_run()
    if not with_loop:
        contents = prose(24)
    a = analyze(speakers, contents)
    assert (a.exact_loop is not None) == with_loop
    paths = write_plots(a, contents, tmp_path / "plots", "run1")
    assert [p.name for p in paths] == [
        "run1-words.png",
        "run1-similarity.png",
        "run1-novelty.png",
        "run1-lag-similarity.png",
        "run1-themes.png",
    ]
    for path in paths:
        expected = (
            HEATMAP_SIZE_PX if path.name.endswith("-similarity.png") and "lag" not in path.name else SERIES_SIZE_PX
        )
        assert png_size(path) == expected
        height, width = matplotlib.image.imread(path).shape[:2]
        assert (width, height) == expected


def test_write_plots_of_an_empty_transcript(tmp_path):
    a = analyze([], [])
    paths = write_plots(a, [], tmp_path, "empty")
    assert len(paths) == 5 and all(png_size(p) in (SERIES_SIZE_PX, HEATMAP_SIZE_PX) for p in paths)


def test_documented_plot_sizes():
    assert SERIES_SIZE_PX == (800, 400)
    assert HEATMAP_SIZE_PX == (700, 600)
