"""A store for the export tests: real runs made by the engine with scripted participants, and a few
stored as other processes leave them (an experiment's run that failed, an imported transcript)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from duologue import api
from duologue.cli import cli
from duologue.records import Message, Run
from duologue.spec import spec_from_dict
from duologue.store import Store

EXPERIMENT = "exp-exports"
FAILED_RUN = "20260101-120000-e00001"  # the experiment's run: status error
IMPORTED_MD = """# ann ↔ ben

**Started:** 2025-05-01 10:00:00
**Ended:** 2025-05-01 10:05:00
**Messages:** 3

---

### ann

Hi.

---

### ben

Hello, ann.

---

### ann

Bye.

---

"""

# Untrusted model output, every way it could turn into markup, a link or a line break in JSONL.
HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">click me</a> and [md link](javascript:alert(1))',
    "line\u2028separator and </div></article><svg onload=alert(1)></svg>",
]


def invoke(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == code, (result.exit_code, result.output)
    return result


def two_voices(**extra) -> dict:
    return {
        "opener": "hello there",
        "max_messages": 6,
        "on_loop": "continue",
        "participants": [
            {"name": "a", "model": "scripted/a", "system": "You are A."},
            {
                "name": "b",
                "model": "scripted/b",
                "system": "You are B.",
                "history": [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "noted"}],
            },
        ],
        **extra,
    }


def three_voices() -> dict:
    return {
        "opener": "all of you, hello",
        "max_messages": 7,
        "on_loop": "continue",
        "participants": [
            {"name": "x", "model": "scripted/x", "system": "You are X."},
            {"name": "y", "model": "scripted/y", "system": "You are Y."},
            {"name": "z", "model": "scripted/z", "system": "You are Z."},
        ],
    }


def build_store(tmp_path: Path, scripted_models) -> tuple[Path, list[str]]:
    """Four runs: an imported transcript (started in 2025), a two-voice run with hostile replies, a
    three-voice run, an experiment's run that ended in error. Returns the store and the run ids, oldest
    first."""
    db = tmp_path / "runs" / "duologue.db"
    said = iter(range(100))
    scripted_models.reply = lambda n, view: HOSTILE[next(said) % len(HOSTILE)]  # each in turn, whoever speaks
    hostile = api.run_conversation(spec_from_dict(two_voices()), db=db)
    scripted_models.reply = None
    three = api.run_conversation(spec_from_dict(three_voices()), db=db)
    started = datetime.now(UTC) + timedelta(seconds=5)
    with Store(db) as store:
        store.create_experiment(EXPERIMENT, EXPERIMENT, {"name": EXPERIMENT})
        store.create_run(
            Run(
                id=FAILED_RUN,
                spec=spec_from_dict(two_voices()).model_dump(mode="json"),
                participants=["a", "b"],
                started_at=started,
                ended_at=started + timedelta(seconds=3),
                status="error",
                stop_reason="error",
                stop_detail="the server went away",
                experiment_id=EXPERIMENT,
                experiment_cell={"pairing": 0, "repeat": 0},
                messages=[
                    Message(index=1, speaker="a", content="hello there", injected=True, started_at=started),
                    Message(index=2, speaker="b", content="b says 1", model="scripted/b", started_at=started),
                ],
            )
        )
    md = tmp_path / "imported.md"
    md.write_text(IMPORTED_MD, encoding="utf-8")
    imported = api.import_transcript(md, db=db)
    return db, [imported.id, hostile.id, three.id, FAILED_RUN]
