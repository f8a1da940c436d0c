"""Closing the embedded engine while another thread still uses its model (issue 25, finding 2).

A run whose stdout closes is cancelled; the pool then closes its engines while a
`count_tokens` started with `asyncio.to_thread` may still be tokenizing in a worker
thread (cancelling the await does not stop the thread). Freeing the model under it
was a use-after-free: `duologue run | head -1` died of SIGSEGV about one time in ten.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from duologue.backends.base import ChatMessage
from duologue.backends.embedded.engine import SharedLlamaEngine
from duologue.errors import BackendError
from duologue.store import Store
from helpers import cli_env


class Formatter:
    def __call__(self, messages):
        class Rendered:
            prompt = " ".join(m["content"] for m in messages)

        return Rendered()


class BlockingModel:
    """A stand-in for llama_cpp's LlamaModel whose tokenize waits until told to go on."""

    def __init__(self):
        self.tokenizing = threading.Event()
        self.go_on = threading.Event()
        self.freed = threading.Event()
        self.freed_while_tokenizing = False

    def tokenize(self, text: bytes, add_bos: bool, special: bool) -> list[int]:
        self.tokenizing.set()
        self.go_on.wait(10)
        if self.freed.is_set():
            self.freed_while_tokenizing = True
        return list(range(len(text.split())))

    def close(self) -> None:
        self.freed.set()


def engine_with(model: BlockingModel) -> SharedLlamaEngine:
    engine = SharedLlamaEngine(Path("model.gguf"))
    engine._model, engine._formatter = model, Formatter()  # loaded, as far as tokenizing goes
    return engine


def test_close_waits_for_a_tokenize_in_another_thread():
    model = BlockingModel()
    engine = engine_with(model)
    view = [ChatMessage("user", "one two three")]
    counted: list[int] = []
    counter = threading.Thread(target=lambda: counted.append(len(engine.prompt_tokens(view))))
    counter.start()
    assert model.tokenizing.wait(10)
    closer = threading.Thread(target=engine.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive(), "close() returned while another thread was tokenizing"
    assert not model.freed.is_set(), "the model was freed under a running tokenize"
    model.go_on.set()
    counter.join(10)
    closer.join(10)
    assert not closer.is_alive()
    assert model.freed.is_set() and not model.freed_while_tokenizing
    assert counted == [3]


def test_no_tokenize_starts_once_the_engine_is_closed():
    model = BlockingModel()
    model.go_on.set()
    engine = engine_with(model)
    engine.close()
    with pytest.raises(BackendError, match="closed"):
        engine.prompt_tokens([ChatMessage("user", "hello")])
    assert not model.tokenizing.is_set()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_run_piped_into_head_ends_141_twenty_times_out_of_twenty(tmp_path):
    """`duologue run | head -1` on the embedded model, as a user types it, twenty times."""
    codes = []
    for i in range(20):
        proc = subprocess.run(
            [
                "bash",
                "-c",
                f"{shlex.quote(sys.executable)} -m duologue run --max-messages 4 --max-tokens 32 2>err"
                " | head -1 >/dev/null; exit ${PIPESTATUS[0]}",
            ],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        stderr = (tmp_path / "err").read_text()
        codes.append(proc.returncode)
        assert proc.returncode == 141, (i, proc.returncode, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("output closed: run "), stderr
        assert "duologue resume" in lines[0]
    assert codes == [141] * 20
    with Store(tmp_path / "runs" / "duologue.db", create=False) as store:
        statuses = [store.get_run(row.id).status for row in store.list_runs(limit=100)]
    assert statuses == ["interrupted"] * 20
