"""An experiment's report, from the store alone: each run's stats and place on the attractor map, the
numbers overall and split by the pairing and every varied setting, survival curves, and the plots.

`duologue report`, the viewer's experiment page and scripts read it; a collection of imported runs
(`import --experiment`) is reported as an experiment duologue ran, split by its record's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ..errors import DuologueError
from ..experiment_spec import ExperimentSpec, stored_experiment
from ..store import DEFAULT_DB, Store


def load_experiment_stats(
    store: Store, name: str, ends: list | None = None, labeller: str | None = None, spans: list | None = None
):
    """RunStats for every run of the experiment, from the store alone. Given a list `ends`, it is
    filled with each run's place on the attractor map (analysis.attractors.RunEnd), from the stored
    analysis's verdict and message labels, or from `labeller`'s labels (a judge's model string: `duologue
    judge`); given `spans`, with each run's (started_at, ended_at)."""
    from .attractors import run_end
    from .experiment import run_stats
    from .params import detection_params
    from .text import words

    store.require_experiment(name)
    judged = store.experiment_labels(name, labeller) if labeller else None
    by_run: dict[str, list[dict[str, Any]]] = {}
    themes: dict[str, list[tuple[str | None, str | None, str]]] = {}
    for m in store.experiment_messages(name):
        by_run.setdefault(m.run_id, []).append(
            {
                "idx": m.message_index,
                "prompt_tokens": m.prompt_tokens,
                "completion_tokens": m.completion_tokens,
                "latency": m.latency,
                "words": len(words(m.content)),
                "injected": bool(m.injected),
            }
        )
        themes.setdefault(m.run_id, []).append((m.theme, m.topic, m.content))
    stats = []
    for run in store.experiment_run_records(name):
        run_row: dict[str, Any] = {
            "id": run.id,
            "status": run.status,
            "stop_reason": run.stop_reason,
            "max_messages": run.spec.get("max_messages"),
            # A run added to the experiment by hand has no cell: its title stands for its pairing.
            "cell": run.cell if run.cell else {"pairing": run.title},
            "cost": run.cost,
            "cost_unknown": run.cost_unknown,
        }
        stats.append(run_stats(run_row, by_run.get(run.id, []), run.loops))
        if spans is not None:
            spans.append((run.started_at, run.ended_at))
        if ends is not None:
            msgs = themes.get(run.id, [])
            verdict = run.verdict  # the stored analysis's, as every surface says it (verdict.py)
            labels = [t for t, _, _ in msgs]
            end_state, attractor, onset = verdict.end_state, verdict.attractor, verdict.attractor_onset
            if judged is not None:  # the map from a judge's labels; the run's own verdict stays beside it
                labels, end_state, attractor, onset, _ = labelled_ends(run.spec, judged.get(run.id, {}), len(msgs))
            window = detection_params(run.spec.get("detection"))[2].final_window
            end = run_end(
                run.id,
                run_row["cell"],
                end_state,
                attractor,
                onset,
                labels,
                [tp for _, tp, _ in msgs],
                [c for _, _, c in msgs[-window:]],
            )
            end.verdict = verdict
            end.window = window
            ends.append(end)
    return stats


class LabelledEnd(NamedTuple):
    """What a run's attractor rule finds in another labeller's labels (experiment_report.labelled_ends)."""

    labels: list[str | None]  # messages 1..n (one it did not label: None)
    end_state: str | None
    attractor: str | None  # the family id
    onset: int | None
    topic: str | None  # the family the run began in (from labels alone: entered in its first exchange)


def labelled_ends(spec: dict[str, Any], labels: dict[int, str | None], n: int) -> LabelledEnd:
    """A run's labels 1..n from another labeller (a message it did not label counts as none), and the end
    state, attractor, its onset and the topic the run's own attractor rule finds in them (entry.py)."""
    from .entry import detect_attractor, end_state, topic_from_start
    from .params import detection_params
    from .themes import MessageThemes, load_themes

    _, _, params = detection_params(spec.get("detection") or {})
    try:
        themes = load_themes(params.themes)
    except DuologueError:
        themes = load_themes(None)
    seq = [labels.get(i) for i in range(1, n + 1)]
    trajectory = [MessageThemes(i, label, None) for i, label in enumerate(seq, start=1)]
    found = detect_attractor(trajectory, themes, params)
    return LabelledEnd(
        seq,
        end_state(trajectory, params, themes),
        found.theme if found else None,
        found.onset if found else None,
        topic_from_start(trajectory, themes, params),
    )


def experiment_agreement(store: Store, name: str, themes) -> list[dict[str, Any]]:
    """Per labeller besides the built-in analysis (`duologue judge`), its agreement with the built-in
    labels over every message of the experiment both labelled: Cohen's κ per family (agreement.py)."""
    from .agreement import BUILTIN, agreement

    runs = [r.id for r in store.experiment_run_records(name)]
    labellers = sorted({x.labeller for x in store.labellings(runs)})
    if not labellers:
        return []
    analysed = {r for r in runs if store.run_semantic(r) is not None}  # an unanalysed run has no built-in labels
    builtin = {(m.run_id, m.message_index): m.theme for m in store.experiment_messages(name) if m.run_id in analysed}
    out = []
    for labeller in labellers:
        other = store.experiment_labels(name, labeller)
        pairs = [
            (builtin[(run_id, idx)], label)
            for run_id, labels in sorted(other.items())
            for idx, label in sorted(labels.items())
            if (run_id, idx) in builtin
        ]
        out.append(agreement(pairs, themes, BUILTIN, labeller).as_dict())
    return out


# What a report splits an older experiment by (one whose record today's duologue cannot read).
REPORT_SETTINGS = ("pairing", "opener", "system", "temperature")


def report_settings(exp_spec: dict[str, Any]) -> tuple[ExperimentSpec | None, list[str]]:
    """The stored experiment, and the settings its report splits the runs by: the pairing, then every
    varied path. A collection of imported runs (`import --experiment`) has no experiment file: its record
    names its settings (the pairing, the template)."""
    if exp_spec.get("collection"):
        return None, [str(s) for s in exp_spec.get("settings") or ["pairing"]]
    stored = stored_experiment(exp_spec)
    return stored, (stored.settings if stored else list(REPORT_SETTINGS))


def experiment_stats_by(store: Store, name: str, labeller: str | None = None) -> tuple[list, dict[str, Any]]:
    """The runs' stats, and the report's numbers: overall, by each setting that varies, survival per pairing;
    the attractor map from the built-in labels or `labeller`'s, and each other labeller's agreement with the
    built-in one."""
    from dataclasses import asdict

    from .agreement import BUILTIN
    from .attractors import attractor_group, cluster_unknown, entry_survival, grouped_ends, share_by_turn
    from .experiment import group_stats, grouped, survival_curve, wall_seconds
    from .semantic import theme_labels
    from .themes import load_themes

    if labeller == BUILTIN:
        labeller = None
    if labeller is not None and labeller not in {
        x.labeller for x in store.labellings(r.id for r in store.experiment_run_records(name))
    }:
        raise DuologueError(
            f"no labels by '{labeller}' in experiment {name} (`duologue judge {name} --model {labeller}` makes them)"
        )
    ends: list = []
    spans: list = []
    stats = load_experiment_stats(store, name, ends, labeller, spans)
    exp_spec = store.require_experiment(name).spec
    stored, settings = report_settings(exp_spec)
    if stored is not None:
        for r in [*stats, *ends]:  # each varied value as shown: an opener by its text, not its position
            r.cell = stored.shown_cell(r.cell)
    report: dict[str, Any] = {"experiment": name, "runs": len(stats), "overall": asdict(group_stats("all", stats))}
    # Two different sums of time: the experiment's own span, and each group's conversation_seconds (the sum
    # over its runs, which ran side by side).
    report["wall_seconds"] = wall_seconds(spans)
    report["settings"] = []
    for setting in settings:
        groups = grouped(stats, setting)
        if len(groups) > 1 or setting == "pairing":
            report["settings"].append(setting)
            report[f"by_{setting}"] = [asdict(group_stats(g, runs)) for g, runs in groups.items()]
    report["survival"] = {g: survival_curve(runs) for g, runs in grouped(stats, "pairing").items()}
    # The attractor map: where the conversations end up, per pairing and per varied setting.
    cluster_unknown(ends)
    theme_file = ((exp_spec.get("detection") or {}).get("attractor") or {}).get("themes")
    try:
        theme_set = load_themes(theme_file)
    except DuologueError:
        theme_set = load_themes(None)
    labels = theme_labels(theme_set)  # themes' and families' labels
    family_of = {t.id: t.family_id for t in theme_set.themes}
    attractors: dict[str, Any] = {
        "labeller": labeller or BUILTIN,  # whose message labels the map is made of
        "labels": labels,
        "overall": asdict(attractor_group("all", ends)),
    }
    for setting in settings:
        end_groups = grouped_ends(ends, setting)
        if len(end_groups) > 1 or setting == "pairing":
            attractors[f"by_{setting}"] = [asdict(attractor_group(g, group)) for g, group in end_groups.items()]
    by_pairing = grouped_ends(ends, "pairing")
    attractors["entry_survival"] = {g: entry_survival(runs) for g, runs in by_pairing.items()}
    attractors["share_by_turn"] = {g: share_by_turn(runs, family_of=family_of) for g, runs in by_pairing.items()}
    attractors["runs"] = [
        {"run_id": r.run_id, "end_state": r.shown_end, "attractor": r.attractor, "entry": r.entry} for r in ends
    ]
    # Each run's verdict, as `ls`, `show`, the viewer and the exports give it; `cluster`: the name of the
    # group of unresolved end states it falls in on the attractor map ("other: …"), if any.
    report["verdicts"] = [
        {"run_id": r.run_id, "cell": r.cell, **r.verdict.as_dict(), "cluster": r.cluster} for r in ends if r.verdict
    ]
    report["attractors"] = attractors
    report["agreement"] = experiment_agreement(store, name, theme_set)
    report["_ends"] = ends  # for the plots; not written to JSON
    report["_family_of"] = family_of
    return stats, report


def write_report_plots(
    stats: list, ends: list, report: dict[str, Any], folder: Path, stem: str, family_of: dict[str, str]
) -> dict[str, dict[str, Path]]:
    """Every plot of the report once per setting it is split by (the pairing, then each varied path):
    {setting: {plot kind ("survival", "attractors", …): its path}} (plotting.plot_path names the files).
    The attractor plots name whose labels they show (`report["attractors"]["labeller"]`)."""
    from .attractors import grouped_ends, write_attractor_plots
    from .experiment import grouped, write_experiment_plots

    labels, labeller = report["attractors"]["labels"], report["attractors"]["labeller"]
    out: dict[str, dict[str, Path]] = {}
    for setting in report["settings"]:
        paths = write_experiment_plots(grouped(stats, setting), folder, stem, setting)
        if ends:
            paths |= write_attractor_plots(
                grouped_ends(ends, setting), labels, folder, stem, setting, family_of, labeller
            )
        out[setting] = paths
    return out


def experiment_report(store: Store, name: str, folder: Path, labeller: str | None = None) -> dict[str, Any]:
    """Aggregate the experiment, write its plots and `<name>-report.json` into `folder`, return the report.
    `labeller`: whose message labels the attractor map uses (None: the built-in analysis's)."""
    import json

    stats, report = experiment_stats_by(store, name, labeller)
    ends, family_of = report.pop("_ends"), report.pop("_family_of")
    plots = write_report_plots(stats, ends, report, folder, name, family_of)
    report["plots"] = [str(p) for paths in plots.values() for p in paths.values()]
    report["plots_by"] = {setting: [str(p) for p in paths.values()] for setting, paths in plots.items()}
    (folder / f"{name}-report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    return report


def write_experiment_report(
    name: str, folder: Path, *, db: str | Path = DEFAULT_DB, labeller: str | None = None
) -> dict[str, Any]:
    """experiment_report on the store at `db` (what `duologue report` does)."""
    with Store(db, create=False) as store:
        return experiment_report(store, name, folder, labeller)
