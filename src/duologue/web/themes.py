"""A run's themes as the viewer shows them: a strip of one cell per message, a badge per message,
the attractor's entry and the convergence onset.

Theme ids come from the store (or an analysis made on the fly); their labels from the run's theme
set, which a user may have written: labels are untrusted text and the templates escape them.
Colours are CSS classes (the CSP allows no inline styles): an end-state theme's class follows its
position in the theme set, so a theme keeps its colour from run to run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..store import MessageTheme, SemanticSummary
from ..verdict import UNRESOLVED

PALETTE = 10  # theme colour classes in viewer.css: t0 … t9 (and t-none, t-task)


@dataclass(frozen=True)
class ThemeCell:
    """One message of the strip (and its badge)."""

    index: int
    theme: str | None
    label: str  # the theme's label, "none" without one
    topic: str | None  # the topic's label, None without one
    css: str
    marks: tuple[str, ...] = ()  # "entry", "convergence"

    @property
    def title(self) -> str:
        text = f"message {self.index}: {self.label}"
        return text + (f" · topic: {self.topic}" if self.topic else "")


@dataclass
class ThemeView:
    cells: list[ThemeCell]
    legend: list[tuple[str, str, int]]  # (label, css class, messages), in the order first seen
    end_state: str  # label, or "unresolved"
    attractor: str | None = None  # label
    attractor_onset: int | None = None
    convergence_onset: int | None = None
    convergence_strength: float | None = None
    badges: dict[int, ThemeCell] = field(default_factory=dict)

    @property
    def entry_text(self) -> str | None:
        if self.attractor is None or self.attractor_onset is None:
            return None
        return f"entered {self.attractor} at message {self.attractor_onset}"

    @property
    def convergence_text(self) -> str | None:
        if self.convergence_onset is None:
            return None
        strength = f" (strength {self.convergence_strength:.2f})" if self.convergence_strength is not None else ""
        return f"converged since message {self.convergence_onset}{strength}"

    def marks_at(self) -> dict[int, list[tuple[str, str]]]:
        """{message index: [(marker id, text)]}: where the chat shows the entry and the onset."""
        out: dict[int, list[tuple[str, str]]] = {}
        if self.entry_text and self.attractor_onset is not None:
            out.setdefault(self.attractor_onset, []).append(("attractor-entry", self.entry_text))
        if self.convergence_text and self.convergence_onset is not None:
            out.setdefault(self.convergence_onset, []).append(("convergence-onset", self.convergence_text))
        return out


def _css(theme: str | None, order: list[str]) -> str:
    if theme is None:
        return "t-none"
    if theme == "on_task":
        return "t-task"
    colours = [t for t in order if t != "on_task"]
    if theme not in colours:
        colours.append(theme)
    return f"t{colours.index(theme) % PALETTE}"


def theme_view(
    semantic: SemanticSummary | None, messages: Sequence[MessageTheme], labels: Mapping[str, str], order: Sequence[str]
) -> ThemeView | None:
    """The strip of an analysed run; None for a run with no semantic analysis (running, or no messages)."""
    if semantic is None or not messages:
        return None
    order = list(order)
    for m in messages:  # ids the theme set does not know (a file changed since): colours of their own
        if m.theme is not None and m.theme not in order:
            order.append(m.theme)

    def label(theme_id: str | None) -> str:
        return "none" if theme_id is None else labels.get(theme_id, theme_id)

    cells = []
    counts: dict[str | None, int] = {}
    for m in messages:
        marks = tuple(
            name
            for name, at in (("entry", semantic.attractor_onset), ("convergence", semantic.convergence_onset))
            if at == m.index
        )
        cells.append(
            ThemeCell(
                m.index,
                m.theme,
                label(m.theme),
                labels.get(m.topic, m.topic) if m.topic else None,
                _css(m.theme, order),
                marks,
            )
        )
        counts[m.theme] = counts.get(m.theme, 0) + 1
    legend = [(label(t), _css(t, order), n) for t, n in counts.items()]
    return ThemeView(
        cells=cells,
        legend=legend,
        end_state=label(semantic.end_state) if semantic.end_state else UNRESOLVED,
        attractor=label(semantic.attractor) if semantic.attractor else None,
        attractor_onset=semantic.attractor_onset if semantic.attractor else None,
        convergence_onset=semantic.convergence_onset,
        convergence_strength=semantic.convergence_strength,
        badges={c.index: c for c in cells if c.theme is not None or c.topic},
    )


@dataclass
class JudgeView:
    """Another labeller's labels of a run (`duologue judge`): its strip, and its agreement with the built-in one."""

    labeller: str
    themes: str  # the theme set it was given
    labelled: int  # messages it labelled
    view: ThemeView | None
    agreement: Any = None  # analysis.agreement.Agreement, None when no message has both labels

    @property
    def families(self) -> list[Any]:
        """The families the one labeller or the other used, with their κ."""
        return [f for f in self.agreement.families if f.first or f.second] if self.agreement else []


def judge_views(store: Any, run: Any, labels: Mapping[str, str], order: Sequence[str]) -> list[JudgeView]:
    """Each judge's labels of the run as a strip (its attractor and end state by the run's own rule, a message
    it did not label counting as none) and its agreement with the built-in labels (Cohen's κ per family)."""
    from ..analysis.agreement import runs_agreement
    from ..analysis.experiment_report import labelled_ends

    out = []
    n = len(run.messages)
    for labelling in store.labellings([run.id]):
        judged = store.message_labels(run.id, labelling.labeller)
        seq, end, attractor, onset, _ = labelled_ends(run.spec, judged, n)
        semantic = SemanticSummary(end_state=end, attractor=attractor, attractor_onset=onset)
        messages = [MessageTheme(i, label, None) for i, label in enumerate(seq, start=1)]
        out.append(
            JudgeView(
                labelling.labeller,
                labelling.themes,
                labelling.labelled,
                theme_view(semantic, messages, labels, order),
                runs_agreement(store, [run], labelling.labeller),
            )
        )
    return out
