"""The detectors' thresholds from a stored spec's `detection` table."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .convergence import ConvergenceParams
from .loops import LoopParams
from .themes import AttractorParams

_LOOP_FIELDS = {f.name for f in fields(LoopParams)}


def detection_params(detection: dict[str, Any] | None) -> tuple[LoopParams, ConvergenceParams, AttractorParams]:
    """(loop, convergence, attractor) thresholds; a spec stored before a field existed gets its default."""
    detection = detection or {}
    loop = LoopParams(**{k: v for k, v in detection.items() if k in _LOOP_FIELDS})
    convergence = ConvergenceParams(**(detection.get("convergence") or {}))
    attractor = AttractorParams(**(detection.get("attractor") or {}))
    return loop, convergence, attractor
