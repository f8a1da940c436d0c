"""A store of analysed runs that drift into themes, for the viewer's theme strip and attractor map.

Runs are stored as the engine leaves them and analysed by the same path (`_store_analysis`), so
their themes, attractor and convergence columns are the real ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

from analysis.semantic_cases import DEBATE, FAREWELL_SPIRAL, GRATITUDE_DRIFT, ROLE_COLLAPSE, TECH
from duologue.analysis.stored import store_analysis as _store_analysis
from duologue.records import Message, Run
from duologue.store import Store

from .sample import spec

T0 = datetime(2026, 3, 15, 9, 0, 0, tzinfo=UTC)

DRIFT_RUN = "20260315-090000-300001"  # TECH then GRATITUDE_DRIFT: enters gratitude/unity at message 9
COLLAPSE_RUN = "20260315-090000-300002"  # TECH[:6] then ROLE_COLLAPSE: converges, then role collapse
HOSTILE_THEME_RUN = "20260315-090000-300003"  # the drift, with a theme file whose label is markup
UNANALYSED_RUN = "20260315-090000-300004"  # finished, no stored analysis: analysed on the fly
LIVE_THEME_RUN = "20260315-090000-300005"  # running: no strip yet
EXPERIMENT = "exp-drift"

DRIFT = TECH + GRATITUDE_DRIFT
COLLAPSE = TECH[:6] + ROLE_COLLAPSE
HOSTILE_LABEL = '<script>window.__pwned = "theme"; document.title = "pwned"</script><b>grateful</b>'

# (run id, pairing, temperature, contents, expected end state) of the experiment's runs
PAIRING_A, PAIRING_B = "local/smollm2 ↔ local/smollm2", "openai/gpt-4o-mini ↔ local/smollm2"
EXPERIMENT_RUNS = [
    ("20260315-090000-400001", PAIRING_A, 0.7, TECH + GRATITUDE_DRIFT, "gratitude"),
    ("20260315-090000-400002", PAIRING_A, 1.0, TECH[:6] + GRATITUDE_DRIFT, "gratitude"),
    ("20260315-090000-400003", PAIRING_B, 0.7, TECH[:6] + FAREWELL_SPIRAL, "farewell"),
    ("20260315-090000-400004", PAIRING_B, 1.0, DEBATE, None),
]


def hostile_theme_file(folder: Path) -> Path:
    """The built-in theme set with gratitude's label and its family's (spiritual bliss) replaced by markup."""
    text = resources.files("duologue.analysis").joinpath("themes.toml").read_text(encoding="utf-8")
    assert 'label = "gratitude"' in text and 'bliss = "spiritual bliss"' in text
    path = folder / "hostile-themes.toml"
    escaped = HOSTILE_LABEL.replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace('label = "gratitude"', f'label = "{escaped}"')
    path.write_text(text.replace('bliss = "spiritual bliss"', f'bliss = "{escaped}"'), encoding="utf-8")
    return path


def add_run(
    store: Store,
    run_id: str,
    contents: list[str],
    *,
    started: datetime,
    names=("alice", "bob"),
    models=("local/smollm2", "local/smollm2"),
    status: str = "finished",
    analyse: bool = True,
    experiment_id: str | None = None,
    cell: dict | None = None,
    detection: dict | None = None,
) -> Run:
    names, models = list(names), list(models)
    messages = [
        Message(
            index=i,
            speaker=names[(i - 1) % 2],
            content=c,
            model=None if i == 1 else models[(i - 1) % 2],
            started_at=started + timedelta(seconds=2 * i),
            ended_at=started + timedelta(seconds=2 * i + 1),
            injected=i == 1,
        )
        for i, c in enumerate(contents, start=1)
    ]
    run_spec = spec(names, models)
    if detection:
        run_spec["detection"] = detection
    run = Run(
        id=run_id,
        spec=run_spec,
        participants=names,
        started_at=started,
        ended_at=None if status == "running" else started + timedelta(minutes=1),
        status=status,
        stop_reason=None if status == "running" else "max_messages",
        duologue_version="0.1.0",
        experiment_id=experiment_id,
        experiment_cell=cell,
        messages=messages,
    )
    store.create_run(run)
    if analyse and status != "running":
        _store_analysis(store, run)
    return run


def build_theme_store(db: Path) -> Path:
    db.parent.mkdir(parents=True, exist_ok=True)
    themes = hostile_theme_file(db.parent)
    with Store(db) as store:
        add_run(store, DRIFT_RUN, DRIFT, started=T0)
        add_run(store, COLLAPSE_RUN, COLLAPSE, started=T0 + timedelta(minutes=1))
        add_run(
            store,
            HOSTILE_THEME_RUN,
            DRIFT,
            started=T0 + timedelta(minutes=2),
            detection={"attractor": {"themes": str(themes)}},
        )
        add_run(store, UNANALYSED_RUN, DRIFT, started=T0 + timedelta(minutes=3), analyse=False)
        add_run(store, LIVE_THEME_RUN, DRIFT[:10], started=T0 + timedelta(minutes=4), status="running")
        store.create_experiment(EXPERIMENT, "drift", {"name": "drift", "repeats": 1})
        for i, (run_id, pairing, temperature, contents, _) in enumerate(EXPERIMENT_RUNS):
            models = pairing.split(" ↔ ")
            add_run(
                store,
                run_id,
                contents,
                started=T0 + timedelta(hours=1, minutes=i),
                models=models,
                experiment_id=EXPERIMENT,
                cell={"pairing": pairing, "temperature": temperature, "repeat": 0},
            )
    return db
