"""One set of words for each measure: the CLI, the viewer, the JSON keys and the docs read them here.

`WORDS` maps a measure's key (also its key in JSON, where it has one) to the words people read.
A test reads this table and checks every surface against it (tests/test_vocabulary.py).
"""

from __future__ import annotations

from typing import Any

WORDS: dict[str, str] = {
    # A run's loops, from its stored analysis (docs/detectors.md).
    "exact_loop": "exact loop",
    "near_loop": "near loop",
    # A run with an exact loop or a near loop: the report's `looped` count and column.
    "looped": "loop or near loop",
    "convergence": "convergence",
    # The family a run entered and stayed in to its end, and where its final messages are.
    "attractor": "attractor",
    "end_state": "end state",
    "unresolved": "unresolved",  # an end state no known theme holds
    "no_loop": "none",  # no exact or near loop; no attractor
    # A live detector's event: what it found at that message, before the run was over.
    "flagged_live": "flagged live",
    # Time: the sum of every conversation's generation time, and the experiment's own span.
    "conversation_seconds": "conversation-seconds",
    "wall_seconds": "wall time",
}


def word(key: str) -> str:
    return WORDS[key]


def shown_text(value: Any) -> str:
    """A value as a label: a text that is blank (an opener of one space) in quotes, so it shows."""
    if value is None:
        return ""
    text = str(value)
    return repr(text) if not text.strip() else text
