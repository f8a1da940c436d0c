"""Detectors: what watches a run as it goes, one module per detector in this package.

Each module here defines `DETECTOR = Detector(...)`: a name, a `make(spec,
settings)` that returns the run's Watcher (an object with `observe(message)
-> list[WatchEvent]`, see engine.Watcher), and optionally `params`, a frozen
dataclass of its thresholds with their defaults. A run builds one watcher per
detector (`watchers_for`); a live run and `analyze` call the same code.

Configuration: one scheme for every detector, `[detection.<name>]` in a
conversation or experiment TOML: `on = "stop" | "flag" | "continue"` (stop the
run, with the detector's name as stop reason; record an event and go on; stay
silent) and its thresholds by field name. A plugin's detector with `params`
is configured so (default `on = "flag"`). The built-in ones are too:
`[detection.loop]` (on, max_period, min_cycles), `[detection.near_loop]` (on
and the near-loop thresholds), `[detection.convergence]`, `[detection.attractor]`
(spec.py, ConversationSpec._detector_tables); their older spellings (on_loop,
on_near_loop, on_convergence, on_attractor and the loop thresholds at the top
of [detection]) mean the same, and are what a stored spec holds. Unknown keys
are errors, as everywhere in a spec; a plugin's table is checked where a spec
enters a run (`check_detection`), against the detectors installed.

So a new detector is one file in this folder, and its settings in the TOML.
Third-party packages add detectors through the entry-point group
`duologue.detectors` (an entry point naming a Detector).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..plugins import Registry, package_parts

if TYPE_CHECKING:
    from ..engine import Watcher
    from ..spec import ConversationSpec

ACTIONS = ("stop", "flag", "continue")


@dataclass(frozen=True)
class Detector:
    name: str
    make: Callable[[ConversationSpec, Any], Watcher]  # (spec, settings: params instance or None)
    params: type | None = None  # a frozen dataclass of thresholds, configured by [detection.<name>]
    description: str = ""


# Every detector: this package's modules (by name), then plugins' (entry points), then registered ones.
DETECTORS: Registry[Detector] = Registry(
    "detector", Detector, "duologue.detectors", builtins=package_parts(__name__, __path__, "DETECTOR", Detector)
)


def detectors() -> Registry[Detector]:
    return DETECTORS


def register_detector(det: Detector, *, replace: bool = False) -> None:
    """Add a detector from a program (plugins in packages use the entry-point group instead)."""
    DETECTORS.register(det, replace=replace)


def unregister_detector(name: str) -> None:
    DETECTORS.unregister(name)


def configurable() -> dict[str, Detector]:
    """The detectors configured by a [detection.<name>] table of their own."""
    return {name: d for name, d in detectors().items() if d.params is not None}


def check_settings(name: str, table: Any) -> dict[str, Any]:
    """Validate a [detection.<name>] table (raises ValueError with one line); returns it as given."""
    det = configurable().get(name)
    if det is None:
        raise ValueError(f"{name}: unknown field")
    if not isinstance(table, Mapping):
        raise ValueError(f"{name}: expected a table of settings")
    settings = dict(table)
    on = settings.pop("on", "flag")
    if on not in ACTIONS:
        raise ValueError(f"{name}.on: expected one of {', '.join(ACTIONS)}, got {on!r}")
    assert det.params is not None
    known = {f.name for f in dataclasses.fields(det.params)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{name}.{unknown[0]}: unknown field")
    try:
        det.params(**settings)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: {err}") from None
    return dict(table)


def check_detection(spec: ConversationSpec, source: str | None = None) -> None:
    """Every [detection.<name>] table of a spec checked against the detectors installed (check_settings);
    a SpecError with one line per problem. Done where a spec enters a run, not when it is validated."""
    problems = []
    for name, table in (spec.detection.model_extra or {}).items():
        try:
            check_settings(name, table)
        except ValueError as err:
            problems.append(f"{source + ': ' if source else ''}detection: {err}")
    if problems:
        raise SpecError(*problems)


def settings_for(spec: ConversationSpec, det: Detector) -> tuple[Any, str]:
    """(params, action) of a configurable detector for this run."""
    table = dict((spec.detection.model_extra or {}).get(det.name) or {})
    on = table.pop("on", "flag")
    assert det.params is not None
    return det.params(**table), on


def watchers_for(spec: ConversationSpec) -> list[Watcher]:
    """The watchers of a run: one per detector."""
    out = []
    for det in detectors().values():
        if det.params is None:
            out.append(det.make(spec, None))
            continue
        params, on = settings_for(spec, det)
        if on != "continue":
            out.append(_Acting(det.make(spec, params), det.name, on))
    return out


class _Acting:
    """Applies a configurable detector's `on` action to the events its watcher reports."""

    def __init__(self, inner: Watcher, name: str, on: str) -> None:
        self.inner, self.name, self.on = inner, name, on

    def observe(self, message):
        events = self.inner.observe(message)
        if self.on == "stop":
            return [dataclasses.replace(e, stop=e.stop or self.name) for e in events]
        return [dataclasses.replace(e, stop=None) for e in events]
