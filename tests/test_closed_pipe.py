"""`duologue run | head -3`: the closed pipe ends the run as interrupted (resumable), quietly, exit 141."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from duologue.store import Store
from helpers import REPO, cli_env

# `duologue` with a `scripted` provider whose replies stream word by word, each word after a short
# await (as a real backend's would), registered the way a plugin registers one.
DRIVER = textwrap.dedent(
    """
    import asyncio
    import sys

    sys.path.insert(0, {tests!r})
    from scripted import ScriptedBackend

    from duologue.backends import registry
    from duologue.backends.base import TextDelta
    from duologue.backends.provider import Provider
    from duologue.cli import main


    class Streaming(ScriptedBackend):
        async def complete(self, messages, sampling, on_event=None):
            reply = await super().complete(messages, sampling)
            for word in (reply.text + " and on and on").split():
                await asyncio.sleep(0.002)
                if on_event is not None:
                    on_event(TextDelta(word + " "))
            return reply


    registry.register_provider(
        Provider(
            "scripted",
            "scripted",
            description="tests: answers from a script",
            make=lambda p, provider, name: Streaming(p.model, name=p.name),
            check=lambda p, provider, name: None,
        )
    )
    sys.argv[0] = "duologue"
    main()
    """
)


def run_into_closed_pipe(tmp_path, *args: str, lines: int = 3) -> subprocess.CompletedProcess:
    """`duologue ARGS | head -LINES`: read that many lines of stdout, then close it."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(tests=str(REPO / "tests")))
    proc = subprocess.Popen(
        [sys.executable, str(driver), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    for _ in range(lines):
        proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)


def only_run(tmp_path):
    with Store(tmp_path / "runs" / "duologue.db", create=False) as store:
        (row,) = store.list_runs()
        return store.get_run(row.id)


def test_a_closed_pipe_interrupts_the_run(tmp_path):
    proc = run_into_closed_pipe(tmp_path, "run", "--a", "scripted/a", "--b", "scripted/b", "--max-messages", "40")
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    run = only_run(tmp_path)
    assert run.status == "interrupted" and run.stop_reason == "interrupted", (run.status, run.stop_reason)
    assert 1 <= len(run.messages) < 40
    assert proc.stderr.strip().splitlines() == [
        f"output closed: run {run.id} stopped; continue it with `duologue resume {run.id}`"
    ]
    # `resume` takes it up and runs it to its end.
    resumed = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), "resume", "@last", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    run = only_run(tmp_path)
    assert run.status == "finished" and len(run.messages) == 40


def test_a_pipe_closed_before_the_first_message(tmp_path):
    proc = run_into_closed_pipe(tmp_path, "run", "--a", "scripted/a", "--b", "scripted/b", lines=1)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert only_run(tmp_path).status == "interrupted"
