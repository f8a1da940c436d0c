"""A store with known runs for the viewer's tests: a long loop, hostile markup, a live run, an experiment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from duologue.api import analyze_run
from duologue.records import Message, Run
from duologue.spec import ConversationSpec, Participant
from duologue.store import Store

T0 = datetime(2026, 3, 14, 9, 0, 0, tzinfo=UTC)

# Fixed ids, so the screenshots the tests take only change when the viewer does.
LOOP_RUN = "20260314-090000-100001"
HOSTILE_RUN = "20260314-090000-100002"
LIVE_RUN = "20260314-090000-100003"
EXPERIMENT = "exp-greetings"

OPENING = [
    " ",
    "Hello! What would you like to talk about today?",
    "Maps, maybe. What does the shape of a conversation look like to you?",
    "A river that keeps folding back on itself.\n\nSometimes it reaches the sea.  \nSometimes it does not.",
    "Then let us see where ours goes. I will follow the current.",
    "Thank you for this. It was lovely to think with you. [END]",
]
FAREWELLS = ["Goodbye, dear friend. [END]", "Farewell, and thank you. [END]"]

# Each would change the page if it ran as markup: assert none of this ever happens.
HOSTILE = [
    '<script>window.__pwned = "script"; document.title = "pwned";</script>',
    "<img src=\"x\" onerror=\"window.__pwned = 'img'; document.title = 'pwned'\">",
    '[a harmless link](javascript:window.__pwned="md-link") and <a href="javascript:window.__pwned=\'a\'">click me</a>',
    "</div></article><svg onload=\"window.__pwned='svg'\"></svg>{{ 7*7 }}",
]


def spec(names: list[str], models: list[str], max_messages: int = 100) -> dict:
    participants = [Participant(name=n, model=m, seed=i) for i, (n, m) in enumerate(zip(names, models, strict=True))]
    return ConversationSpec(participants=participants, max_messages=max_messages).model_dump(mode="json")


def add_run(
    store: Store,
    run_id: str,
    names: list[str],
    models: list[str],
    contents: list[str],
    *,
    started: datetime,
    stop_reason: str | None = "max_messages",
    status: str = "finished",
    experiment_id: str | None = None,
    reasoning: dict[int, str] | None = None,
    analyse: bool = True,
    extra_spec: dict | None = None,
) -> Run:
    """A run as the engine would leave it: message 1 is the injected opener, then turns with timings."""
    messages = []
    for i, content in enumerate(contents, start=1):
        at = started + timedelta(seconds=2 * i)
        generated = i > 1
        messages.append(
            Message(
                index=i,
                speaker=names[(i - 1) % len(names)],
                content=content,
                model=models[(i - 1) % len(models)] if generated else None,
                reasoning=(reasoning or {}).get(i),
                started_at=at,
                ended_at=at + timedelta(seconds=1.5),
                ttft=0.125 if generated else None,
                latency=1.5 if generated else None,
                prompt_tokens=40 * i if generated else None,
                cached_tokens=30 * i if generated else None,
                completion_tokens=len(content.split()) if generated else None,
                finish_reason="stop" if generated else None,
                attempts=2 if i == 3 else 1,
                injected=not generated,
            )
        )
    run = Run(
        id=run_id,
        spec={**spec(names, models), **(extra_spec or {})},
        participants=names,
        started_at=started,
        ended_at=None if status == "running" else started + timedelta(seconds=2 * len(contents) + 2),
        status=status,
        stop_reason=stop_reason,
        duologue_version="0.1.0",
        experiment_id=experiment_id,
        messages=messages,
    )
    store.create_run(run)
    if analyse and status != "running":
        store.save_analysis(run.id, analyze_run(run))
    return run


def loop_contents(repeats: int = 40) -> list[str]:
    """Five distinct messages, then a period-2 goodbye loop: the first cycle and `repeats` repeats of it."""
    return OPENING[:5] + FAREWELLS * (repeats + 1)


def build_sample_store(db: Path) -> Path:
    """The store every viewer test starts from (ten runs, one experiment)."""
    with Store(db) as store:
        store.create_experiment(EXPERIMENT, "greetings", {"name": "greetings", "repeats": 2})
        add_run(
            store,
            LOOP_RUN,
            ["alice", "bob"],
            ["local/smollm2", "openrouter/qwen/qwen3-next-80b-a3b-instruct"],
            loop_contents(),
            started=T0 + timedelta(hours=5),
            stop_reason="loop",
        )
        add_run(
            store,
            HOSTILE_RUN,
            ["mallory", "bob"],
            ["local/smollm2", "local/smollm2"],
            [" ", *HOSTILE],
            started=T0 + timedelta(hours=4),
            reasoning={2: '<script>document.title = "pwned"</script>thinking'},
        )
        add_run(
            store,
            LIVE_RUN,
            ["alice", "carol"],
            ["local/smollm2", "anthropic/claude-sonnet-4-5"],
            OPENING[:3],
            started=T0 + timedelta(hours=6),
            stop_reason=None,
            status="running",
        )
        others = [
            (["alice", "bob"], ["openai/gpt-4o-mini", "local/smollm2"], "end_marker", None),
            (["carol", "dave"], ["anthropic/claude-sonnet-4-5", "openai/gpt-4o-mini"], "max_messages", None),
            (["carol", "bob"], ["openai/gpt-4o-mini", "openai/gpt-4o-mini"], "error", None),
            (["alice", "bob"], ["local/smollm2", "local/smollm2"], "max_messages", EXPERIMENT),
            (["alice", "bob"], ["local/smollm2", "local/smollm2"], "loop", EXPERIMENT),
            (["alice", "bob"], ["local/smollm2", "openai/gpt-4o-mini"], "max_messages", EXPERIMENT),
        ]
        for i, (names, models, stop, experiment) in enumerate(others):
            contents = loop_contents(3 + i) if stop == "loop" else OPENING[: 3 + i % 3]
            add_run(
                store,
                f"20260314-090000-20000{i}",
                names,
                models,
                contents,
                started=T0 + timedelta(hours=3, minutes=-i),
                stop_reason=stop,
                experiment_id=experiment,
                status="error" if stop == "error" else "finished",
            )
    return db
