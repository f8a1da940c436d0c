"""No API key in the store, a transcript, a log line or an error message, even when a server
echoes the key back in its error text."""

import asyncio
import logging
import os
import subprocess
import sys

import pytest

from duologue import api
from duologue.spec import ConversationSpec, Participant
from faultproxy import FaultProxy, running

SECRET = "sk-duologue-TEST-SECRET-1234"


def cli(tmp_path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    # OPENAI_LOG=debug makes the SDK log every request: those lines must not carry the key either.
    env.update(OPENAI_COMPATIBLE_API_KEY=SECRET, OPENAI_LOG="debug")
    return subprocess.run(
        [sys.executable, "-m", "duologue.cli", *args, "--db", str(tmp_path / "runs.db")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )


def files_holding(root, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_key_never_leaves_the_process(llama_server, tmp_path):
    proxy = FaultProxy(llama_server, {1: "echo-503"}.get)  # the first request: a 503 that repeats the key
    outputs = []
    with running(proxy) as url:
        flags = [
            "--a",
            "local/smollm2",
            "--b",
            "openai-compatible/smollm2",
            "--base-url-b",
            f"{url}/v1",
            "--max-messages",
            "4",
            "--max-tokens",
            "12",
            "--context-length",
            "1024",
        ]
        ok = cli(tmp_path, "run", *flags)
        outputs.append(ok)
        assert ok.returncode == 0, ok.stderr
        assert "bad credentials: Bearer ***" in ok.stdout  # the retry notice, scrubbed

        proxy.schedule = lambda n: "echo-401"  # now every request is refused, echoing the key
        failed = cli(tmp_path, "run", *flags)
        outputs.append(failed)
        assert "stop: error" in failed.stdout and "HTTP 401" in failed.stdout

    runs = api.list_runs(db=tmp_path / "runs.db")
    assert [r["status"] for r in runs] == ["error", "finished"]
    assert "bad credentials: Bearer ***" in runs[0]["stop_detail"]
    for r in runs:
        outputs += [
            cli(tmp_path, "show", r["id"]),
            cli(tmp_path, "export", r["id"], "--format", "json"),
            cli(tmp_path, "export", r["id"], "--format", "md"),
        ]
    outputs.append(cli(tmp_path, "ls"))
    assert any("openai._base_client" in o.stderr for o in outputs)  # the SDK's debug log was on
    for o in outputs:
        assert SECRET not in o.stdout and SECRET not in o.stderr
    assert list(tmp_path.glob("*.md")) and files_holding(tmp_path, SECRET) == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_key_stays_out_of_logs_in_process(llama_server, tmp_path, monkeypatch, caplog, capfd):
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)  # every logger: openai, httpx2, httpcore2, duologue
    proxy = FaultProxy(llama_server, {1: "echo-503", 2: "429"}.get)
    with running(proxy) as url:
        spec = ConversationSpec(
            participants=[
                Participant(
                    name="a",
                    model="openai-compatible/smollm2",
                    base_url=f"{url}/v1",
                    max_tokens=8,
                    retry_base_delay=0.05,
                ),
                Participant(name="b", model="openai-compatible/smollm2", base_url=f"{url}/v1", max_tokens=8),
            ],
            max_messages=3,
        )
        run = asyncio.run(api.arun_conversation(spec, db=tmp_path / "runs.db"))
    assert run.status == "finished" and run.messages[1].attempts == 3
    assert caplog.records  # logging did happen
    assert SECRET not in caplog.text
    out, err = capfd.readouterr()
    assert SECRET not in out + err
    assert files_holding(tmp_path, SECRET) == []
