"""Whole conversations against a real OpenAI-compatible server (llama_cpp.server on 127.0.0.1):
one participant embedded, the other over HTTP through the OpenAI backend."""

import asyncio
import json
import os
import subprocess
import sys

import pytest

from duologue import api
from duologue.spec import ConversationSpec, Participant


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cli_run_with_an_openai_compatible_participant(llama_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    cmd = [
        sys.executable,
        "-m",
        "duologue.cli",
        "run",
        "--a",
        "openai-compatible/smollm2",
        "--base-url-a",
        f"{llama_server}/v1",
        "--b",
        "local/smollm2",
        "--max-messages",
        "5",
        "--max-tokens",
        "16",
        "--context-length",
        "1024",
        "--on-loop",
        "continue",
        "--db",
        str(tmp_path / "runs.db"),
        "-q",
    ]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stderr
    # Three short identical replies would be a loop; this test is about the HTTP path, so loops
    # do not stop it.
    assert "stop: max_messages" in done.stdout, done.stdout
    run = api.load_run(api.list_runs(db=tmp_path / "runs.db")[0]["id"], db=tmp_path / "runs.db")
    assert run.status == "finished" and len(run.messages) == 5
    # A spoke the opener (1) and messages 3 and 5 over HTTP; B answered in-process.
    assert [m.model for m in run.messages[1:]] == ["local/smollm2", "openai-compatible/smollm2"] * 2
    a, b = run.spec["participants"]
    assert (a["model"], a["base_url"], b["model"]) == (
        "openai-compatible/smollm2",
        f"{llama_server}/v1",
        "local/smollm2",
    )
    exported = json.loads(api.export_run(run.id, "json", db=tmp_path / "runs.db"))
    assert "openai-compatible/smollm2" in json.dumps(exported)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_messages_over_http_record_their_metadata(llama_server, tmp_path):
    spec = ConversationSpec(
        participants=[
            Participant(name="local", model="local/smollm2", max_tokens=16, context_length=1024),
            Participant(
                name="remote",
                model="openai-compatible/smollm2",
                base_url=f"{llama_server}/v1",
                max_tokens=16,
                temperature=0.0,
            ),
        ],
        max_messages=4,
        opener="Hello! What is your favourite colour?",
    )
    run = asyncio.run(api.arun_conversation(spec, db=tmp_path / "runs.db", watchers=[]))
    assert run.status == "finished" and len(run.messages) == 4
    for m in run.messages[1::2]:  # the remote side: messages 2 and 4
        assert m.model == "openai-compatible/smollm2" and m.content
        assert m.finish_reason in ("stop", "length") and m.attempts == 1
        assert m.ttft is not None and m.latency >= m.ttft and m.started_at <= m.ended_at
    stored = api.load_run(run.id, db=tmp_path / "runs.db")
    assert [m.content for m in stored.messages] == [m.content for m in run.messages]
