"""A run's verdict: its loop, its attractor and its end state, read from its one stored analysis.

Every surface that says what became of a run — `show`, `ls`, `run`'s summary, `batch`'s summary,
`report` (and its JSON), the viewer's run and experiment pages, the JSON and JSONL exports — reads it
here, from the analysis of the run's final messages (`Store.save_analysis`: its loop and semantic
columns). A live detector's event is history, not the verdict: what it found at the message it was
recorded after, shown as "flagged live at message N" (events.py).

One rule joins the loops and the themes: a run that ends in an exact loop (the loop lasts to its last
message) has the verbatim loop as its end state, whatever its final window's themes say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .vocabulary import WORDS

# The end state of a run that ends in an exact loop: the built-in "verbatim" rule theme's id.
VERBATIM = "verbatim"
UNRESOLVED = WORDS["unresolved"]


class _Exact(Protocol):
    @property
    def period(self) -> int: ...
    @property
    def onset(self) -> int: ...
    @property
    def absorbing(self) -> bool | None: ...


class _Near(Protocol):
    @property
    def onset(self) -> int: ...


class _Loops(Protocol):
    @property
    def exact(self) -> _Exact | None: ...
    @property
    def near(self) -> _Near | None: ...


class _Semantic(Protocol):
    @property
    def end_state(self) -> str | None: ...
    @property
    def attractor(self) -> str | None: ...
    @property
    def attractor_onset(self) -> int | None: ...


def end_state_with_loop(end_state: str | None, ends_in_exact_loop: bool, verbatim: str = VERBATIM) -> str | None:
    """The end state, given whether the run ends in an exact loop: then it is the verbatim loop."""
    return verbatim if ends_in_exact_loop else end_state


@dataclass(frozen=True)
class Verdict:
    """What the stored analysis says became of a run. `analysed` False: no analysis is stored (a run still
    going, interrupted, killed): nothing is claimed."""

    analysed: bool
    loop: str | None = None  # "exact_loop", "near_loop" or None
    loop_period: int | None = None
    loop_onset: int | None = None
    attractor: str | None = None  # the family's (or rule theme's) id
    attractor_onset: int | None = None
    end_state: str | None = None  # id; None: unresolved

    def loop_text(self) -> str:
        if not self.analysed:
            return "-"
        if self.loop == "exact_loop":
            return f"{WORDS['exact_loop']} period {self.loop_period} since message {self.loop_onset}"
        if self.loop == "near_loop":
            return f"{WORDS['near_loop']} since message {self.loop_onset}"
        return WORDS["no_loop"]

    def attractor_text(self, labels: Mapping[str, str] | None = None) -> str:
        if not self.analysed:
            return "-"
        if self.attractor is None:
            return WORDS["no_loop"]
        return f"{(labels or {}).get(self.attractor, self.attractor)} since message {self.attractor_onset}"

    def end_state_text(self, labels: Mapping[str, str] | None = None) -> str:
        if not self.analysed:
            return "-"
        return (labels or {}).get(self.end_state, self.end_state) if self.end_state else UNRESOLVED

    def loop_cell(self) -> str:
        """For a table: `exact loop @6` (from message 6), `near loop @4`, `none`; `-` when not analysed."""
        if not self.analysed:
            return "-"
        return f"{WORDS[self.loop]} @{self.loop_onset}" if self.loop else WORDS["no_loop"]

    def attractor_cell(self, labels: Mapping[str, str] | None = None) -> str:
        """For a table: `spiritual bliss @9` (entered at message 9), `none`; `-` when not analysed."""
        if not self.analysed or self.attractor is None:
            return self.attractor_text(labels)
        return f"{(labels or {}).get(self.attractor, self.attractor)} @{self.attractor_onset}"

    def line(self, labels: Mapping[str, str] | None = None) -> str:
        """One line: `exact loop period 2 since message 6 · attractor none · end state verbatim loop`."""
        if not self.analysed:
            return "not analysed"
        loop = self.loop_text() if self.loop else f"loop {WORDS['no_loop']}"
        return (
            f"{loop} · {WORDS['attractor']} {self.attractor_text(labels)} · "
            f"{WORDS['end_state']} {self.end_state_text(labels)}"
        )

    def as_dict(self) -> dict[str, Any]:
        """For JSON: `loop` is "exact_loop", "near_loop" or null; `end_state` an id or "unresolved"; all null
        when the run has no stored analysis (`analysed` false)."""
        return {
            "analysed": self.analysed,
            "loop": self.loop,
            "loop_period": self.loop_period,
            "loop_onset": self.loop_onset,
            "attractor": self.attractor,
            "attractor_onset": self.attractor_onset,
            "end_state": (self.end_state or UNRESOLVED) if self.analysed else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """The verdict `as_dict` gave."""
        values = {k: data.get(k) for k in ("loop", "loop_period", "loop_onset", "attractor", "attractor_onset")}
        end = data.get("end_state")
        return cls(analysed=bool(data.get("analysed")), end_state=None if end == UNRESOLVED else end, **values)


def verdict_of(loops: _Loops | None, semantic: _Semantic | None) -> Verdict:
    """The verdict of a run from its stored analysis (`Store.run_loops`, `Store.run_semantic`, or
    `LoopSummary.of`/`SemanticSummary.of` an analysis); not analysed when either is None."""
    if loops is None or semantic is None:
        return Verdict(analysed=False)
    exact, near = loops.exact, loops.near
    loop, period, onset = None, None, None
    if exact is not None:
        loop, period, onset = "exact_loop", exact.period, exact.onset
    elif near is not None:
        loop, onset = "near_loop", near.onset
    return Verdict(
        analysed=True,
        loop=loop,
        loop_period=period,
        loop_onset=onset,
        attractor=semantic.attractor,
        attractor_onset=semantic.attractor_onset if semantic.attractor else None,
        end_state=end_state_with_loop(semantic.end_state, bool(exact is not None and exact.absorbing)),
    )


def theme_labels_for(spec: Mapping[str, Any] | None) -> tuple[dict[str, str], list[str]]:
    """The labels of a run's theme set ({id: label}, families included) and its end-state ids in order.
    A theme file that is gone or broken falls back to the built-in set (unknown ids show as ids)."""
    from .analysis.themes import builtin_themes, load_themes
    from .errors import DuologueError

    detection = spec.get("detection") if isinstance(spec, Mapping) else None
    attractor = detection.get("attractor") if isinstance(detection, Mapping) else None
    path = attractor.get("themes") if isinstance(attractor, Mapping) else None
    builtin = builtin_themes()
    try:
        chosen = load_themes(path) if isinstance(path, str) and path else builtin
    except DuologueError:
        chosen = builtin
    labels = {t.id: t.label for t in builtin.themes}
    labels.update({t.id: t.label for t in chosen.themes})
    labels.update({**dict(builtin.families), **dict(chosen.families)})  # an attractor is named by its family
    order = [t.id for t in chosen.end_states] + [t.id for t in builtin.end_states]
    return labels, list(dict.fromkeys(order))
