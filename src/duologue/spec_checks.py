"""Where a spec enters a run (the CLI, the API, a batch): what a spec's validation does not do, because it
depends on this machine rather than on the spec — the aliases in the user's config folder, and the
detectors installed. `spec.py` stays pure: a spec built in a test or a notebook reads no file."""

from __future__ import annotations

from .aliases import resolve_aliases, resolve_participant
from .detectors import check_detection
from .experiment_spec import ExperimentSpec, PlannedConversation, plan_experiment
from .spec import ConversationSpec


def entering_spec(spec: ConversationSpec, source: str | None = None) -> ConversationSpec:
    """The spec with its aliases resolved, its detector tables checked (a SpecError names each problem)."""
    spec = resolve_aliases(spec)
    check_detection(spec, source)
    return spec


def entering_experiment(exp: ExperimentSpec) -> ExperimentSpec:
    """The experiment with the aliases of its pool resolved (so that its stored record holds model strings)."""
    if all("/" in p.model for p in exp.participants):
        return exp
    data = exp.record()  # what the store keeps, and reads back with model_validate
    data["participants"] = [resolve_participant(p) for p in data["participants"]]
    return ExperimentSpec.model_validate(data)


def planned(exp: ExperimentSpec) -> list[PlannedConversation]:
    """The experiment's conversations, each spec as it enters its run (entering_spec)."""
    return [PlannedConversation(plan.cell, entering_spec(plan.spec, exp.name)) for plan in plan_experiment(exp)]
