"""Conversations through a fault-injecting proxy in front of a real llama_cpp.server: 429 with
Retry-After, 500, 503, stalls past the timeout, streams cut, truncated or malformed mid-message.
Every message is stored exactly once; a fault that outlasts the retries ends the run with `error`
and loses nothing, and `resume` finishes it once the fault is gone."""

import asyncio
import sqlite3

import pytest

from duologue import api
from duologue.engine import RunListener
from duologue.spec import ConversationSpec, Participant
from faultproxy import FaultProxy, cycle, no_faults, running

# One request in three or so goes wrong; each fault kind comes round every 21 requests.
SCHEDULE = [
    None,
    "429",
    None,
    None,
    "500",
    None,
    "stall",
    None,
    None,
    "cut",
    None,
    "503",
    None,
    None,
    "truncate",
    None,
    "malformed",
    None,
    None,
    "stall-mid",
    None,
]


def spec_through(proxy_url: str, *, max_messages: int, seed: int, **retry) -> ConversationSpec:
    return ConversationSpec(
        participants=[
            Participant(name="here", model="local/smollm2", max_tokens=24, context_length=1024, threads=1),
            Participant(
                name="there", model="openai-compatible/smollm2", base_url=f"{proxy_url}/v1", max_tokens=24, **retry
            ),
        ],
        max_messages=max_messages,
        seed=seed,
        opener="Hi! Tell me about rivers.",
    )


class RetryLog(RunListener):
    def __init__(self):
        self.notices = []

    def retry(self, run, index, speaker, notice):
        self.notices.append((run.id, index, notice))


def stored_messages(db) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT run_id, idx FROM messages").fetchall()


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_twenty_conversations_complete_under_the_fault_schedule(llama_server, tmp_path):
    db = tmp_path / "runs.db"
    proxy = FaultProxy(llama_server, cycle(SCHEDULE), stall=40, retry_after=1)
    log = RetryLog()
    # The timeout must outlast a request's wait in the server's queue (it answers one at a time but sends
    # a keep-alive every 15 s) on a busy 2-core machine, and a stall must outlast the timeout.
    retry = dict(max_attempts=12, timeout=30, retry_base_delay=0.2, retry_max_delay=2)
    with running(proxy) as url:

        async def all_runs():
            return await asyncio.gather(
                *[
                    api.arun_conversation(
                        spec_through(url, max_messages=12, seed=i, **retry), db=db, listeners=[log], watchers=[]
                    )  # no loop detection: every run must reach 12 messages
                    for i in range(20)
                ]
            )

        runs = asyncio.run(all_runs())
    assert [(r.status, r.stop_reason) for r in runs] == [("finished", "max_messages")] * 20, [
        f"{r.stop_reason}: {r.stop_detail}" for r in runs if r.stop_reason != "max_messages"
    ]
    rows = stored_messages(db)
    assert len(rows) == 240 and len(set(rows)) == 240  # every message stored exactly once
    assert sorted(rows) == sorted((r.id, i) for r in runs for i in range(1, 13))
    for r in runs:
        assert [m.index for m in r.messages] == list(range(1, 13))
        assert [m.model for m in r.messages[1:]] == ["openai-compatible/smollm2", "local/smollm2"] * 5 + [
            "openai-compatible/smollm2"
        ]
        assert all(m.content or m.finish_reason for m in r.messages[1:])
    assert set(proxy.served) == {"429", "500", "503", "stall", "stall-mid", "cut", "truncate", "malformed"}
    retried = [m for r in runs for m in r.messages if m.attempts > 1]
    assert retried and len(log.notices) == sum(m.attempts - 1 for m in retried)
    # A retried message holds only what its last attempt said: its stored text is what the store has.
    stored = {r.id: api.load_run(r.id, db=db) for r in runs}
    for r in runs:
        assert [(m.content, m.attempts) for m in stored[r.id].messages] == [(m.content, m.attempts) for m in r.messages]


class FaultAfter(RunListener):
    """Switches the proxy to one fault for good once a given message is stored."""

    def __init__(self, proxy: FaultProxy, fault: str, index: int):
        self.proxy, self.fault, self.index = proxy, fault, index

    def message_done(self, run, message):
        if message.index == self.index:
            self.proxy.schedule = lambda n: self.fault


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "fault, cause",
    [
        ("503", "HTTP 503 from openai-compatible at"),
        ("stall", "did not answer in time"),
        ("cut", "RemoteProtocolError"),
        ("truncate", "ended before the message did"),
    ],
)
def test_a_fault_that_outlasts_the_retries_ends_the_run_and_resume_finishes_it(llama_server, tmp_path, fault, cause):
    db = tmp_path / "runs.db"
    proxy = FaultProxy(llama_server, no_faults, stall=25)
    retry = dict(max_attempts=3, timeout=20, retry_base_delay=0.05, retry_max_delay=0.2)
    with running(proxy) as url:
        spec = spec_through(url, max_messages=8, seed=1, **retry)
        # Messages 2 and 4 come over HTTP, 3 and 5 from the embedded model; then the far side breaks.
        run = asyncio.run(api.arun_conversation(spec, db=db, listeners=[FaultAfter(proxy, fault, 5)], watchers=[]))
        assert (run.status, run.stop_reason) == ("error", "error"), run.stop_detail
        assert cause in run.stop_detail and "gave up after 3 attempts" in run.stop_detail
        assert run.stop_detail.startswith("openai-compatible/smollm2: ") and "\n" not in run.stop_detail
        kept = api.load_run(run.id, db=db)
        assert [m.index for m in kept.messages] == [1, 2, 3, 4, 5] and kept.status == "error"

        proxy.schedule = no_faults  # the fault stops
        resumed = asyncio.run(api.aresume_run(run.id, db=db, watchers=[]))
    assert (resumed.status, resumed.stop_reason) == ("finished", "max_messages"), resumed.stop_detail
    assert [m.index for m in resumed.messages] == list(range(1, 9))
    assert [m.content for m in resumed.messages[:5]] == [m.content for m in kept.messages]
    assert sorted(stored_messages(db)) == [(run.id, i) for i in range(1, 9)]
