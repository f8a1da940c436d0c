"""Shared by the test modules: running the CLI as a user would, and where the fixtures are."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from duologue.records import Message, Run

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
# A real two-model run that falls into a period-2 loop, and what its analysis must find.
EXAMPLE_MD = FIXTURES / "kimi-llama-period2.md"
EXAMPLE_EXPECTED = FIXTURES / "kimi-llama-period2.expected.json"

# pydantic's own phrasing, which must never reach the user.
LEAKS = (
    "validation error",
    "pydantic",
    "Traceback",
    "input_value",
    "type=",
    "Value error",
    "Input should",
    "List should",
    "String should",
    "after validation",
    "Field required",
    "Extra inputs",
)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DUOLOGUE_DB", None)
    env["COLUMNS"] = "200"
    return env


def run_cli(*args: str, cwd: Path, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
    """`duologue ARGS` in a subprocess, from the folder `cwd`, like a user in a shell."""
    proc = subprocess.run(
        [sys.executable, "-m", "duologue", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"duologue {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def start_cli(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "duologue", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )


def make_run(run_id: str, contents: list[str], *, minutes: int = 0, experiment: str | None = None) -> Run:
    """A finished run of ada ↔ bo saying `contents` in turn, started `minutes` after a fixed time."""
    names = ["ada", "bo"]
    started = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    return Run(
        id=run_id,
        participants=names,
        started_at=started,
        spec={"participants": [{"name": n, "model": "scripted/x"} for n in names]},
        status="finished",
        stop_reason="max_messages",
        experiment_id=experiment,
        messages=[Message(index=k, speaker=names[(k - 1) % 2], content=c) for k, c in enumerate(contents, 1)],
    )


def assert_one_line_error(proc, *needles: str) -> None:
    """The command failed with exit 2 and one line on stderr (no traceback) holding each needle."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def rates(provider_id: str, model_id: str) -> dict[str, Decimal]:
    """A model's rates as the price data lists them (USD per million tokens), read without duologue."""
    from genai_prices.data import providers

    provider = next(p for p in providers if p.id == provider_id)
    model = next(m for m in provider.models if m.id == model_id)
    return {k: v for k, v in vars(model.prices).items() if isinstance(v, Decimal)}


def by_hand(r: dict[str, Decimal], uncached: int, read: int, write: int, out: int) -> float:
    total = (
        uncached * r["input_mtok"]
        + read * r.get("cache_read_mtok", r["input_mtok"])
        + write * r.get("cache_write_mtok", r["input_mtok"])
        + out * r["output_mtok"]
    )
    return float(total / 1_000_000)


def scripted_pair(name: str, openers, **settings):
    """An experiment of the scripted pair a ↔ b over these openers (on_loop continue unless given)."""
    from duologue.experiment_spec import ExperimentSpec
    from duologue.spec import Participant

    return ExperimentSpec(
        name=name,
        participants=[Participant(name="a", model="scripted/a"), Participant(name="b", model="scripted/b")],
        pairings=[("a", "b")],
        openers=list(openers),
        **{"on_loop": "continue", **settings},
    )


def script_reply(scripts: dict[str, list[str]]):
    """A scripted model's reply: the script of the conversation's opener, message by message (its first entry is
    the opener's place; the reply to n messages said is entry n)."""

    def reply(n, view):
        said = [m for m in view if m.role != "system"]
        return scripts[said[0].content][len(said)]

    return reply
