"""How far two labellers of the same messages agree: Cohen's κ per attractor family.

The built-in analysis labels each message with an end-state theme
(themes.ThemeTracker); `duologue judge` asks a model for the same labels. For
each family of the theme set (the faces of spiritual bliss together; a rule
theme is a family of its own), every message both labellers labelled is a yes
or a no for each of them: is its label one of the family's themes? Over those
pairs,

    κ = (p_o − p_e) / (1 − p_e)

with p_o the share of messages on which they agree and p_e = p_a·p_b +
(1 − p_a)(1 − p_b) the agreement expected by chance from each labeller's own
share of yeses (p_a, p_b). κ is undefined (None) when p_e = 1: both said no to
every message (or yes to every one), so there is nothing to agree on beyond
chance. `overall` is Cohen's κ over the families as categories ("none" one of
them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .themes import ThemeSet, load_themes

if TYPE_CHECKING:
    from ..records import Run
    from ..store import Store

BUILTIN = "built-in"  # the name of the built-in analysis as a labeller


def cohen_kappa(a: Sequence[object], b: Sequence[object]) -> float | None:
    """Cohen's κ of two labellings of the same items (any hashable categories); None when undefined."""
    if len(a) != len(b):
        raise ValueError("two labellings of the same items have the same length")
    n = len(a)
    if not n:
        return None
    observed = sum(1 for x, y in zip(a, b, strict=True) if x == y) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[c] * cb[c] for c in ca.keys() & cb.keys()) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class FamilyAgreement:
    family: str  # the family's id
    label: str
    first: int  # messages the first labeller (the built-in analysis) put in the family
    second: int  # messages the second labeller put in it
    both: int  # messages both put in it
    kappa: float | None


@dataclass
class Agreement:
    """Two labellers over the messages both labelled."""

    first: str  # labeller names: the built-in analysis, and the judge's model string
    second: str
    messages: int  # messages both labelled
    families: list[FamilyAgreement] = field(default_factory=list)
    overall: float | None = None  # κ over the families as categories

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement(
    pairs: Iterable[tuple[str | None, str | None]],
    themes: ThemeSet,
    first: str = BUILTIN,
    second: str = "",
) -> Agreement:
    """The agreement of two labellers from (first's label, second's label) per message both labelled
    (theme ids, or family ids; None: none). Families are the theme set's end-state families, then any
    other id a labeller used, each its own family."""
    fa: list[str | None] = []
    fb: list[str | None] = []
    for x, y in pairs:
        fa.append(themes.family_of(x))
        fb.append(themes.family_of(y))
    families = list(dict.fromkeys([*themes.family_ids, *(f for f in fa + fb if f is not None)]))
    out = Agreement(first, second, len(fa), overall=cohen_kappa(fa, fb))
    for family in families:
        ya = [f == family for f in fa]
        yb = [f == family for f in fb]
        out.families.append(
            FamilyAgreement(
                family,
                themes.label(family),
                sum(ya),
                sum(yb),
                sum(1 for x, y in zip(ya, yb, strict=True) if x and y),
                cohen_kappa(ya, yb),
            )
        )
    return out


def run_themes(run: Run) -> ThemeSet:
    """The theme set a run's analysis uses: its spec's [detection.attractor] themes, else the built-in set."""
    from .params import detection_params

    _, _, params = detection_params(run.spec.get("detection") or {})
    return load_themes(params.themes)


def _pairs(store: Store, run: Run, labeller: str) -> list[tuple[str | None, str | None]]:
    builtin = {m.index: m.theme for m in store.message_themes(run.id)}  # empty when the run is not analysed
    other = store.message_labels(run.id, labeller)
    return [(builtin[i], other[i]) for i in sorted(other) if i in builtin]


def runs_agreement(store: Store, runs: Sequence[Run], labeller: str) -> Agreement | None:
    """The built-in analysis's labels against `labeller`'s over every message of these runs both labelled
    (the first such run's theme set names the families); None when there is none."""
    pairs: list[tuple[str | None, str | None]] = []
    themes: ThemeSet | None = None
    for run in runs:
        found = _pairs(store, run, labeller)
        if found and themes is None:
            themes = run_themes(run)
        pairs += found
    return agreement(pairs, themes, BUILTIN, labeller) if themes is not None else None


def format_kappa(kappa: float | None) -> str:
    return "–" if kappa is None else f"{kappa:.2f}"


__all__ = [
    "BUILTIN",
    "Agreement",
    "FamilyAgreement",
    "agreement",
    "cohen_kappa",
    "format_kappa",
    "run_themes",
    "runs_agreement",
]
