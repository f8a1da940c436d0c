"""What a run's process left when it crashed, so that a killed run can say why.

A native crash (a segfault inside llama.cpp, say) ends the process at once:
nothing of duologue runs, the run stays "running" in the store and shows as
killed. While `run`, `fork`, `resume` and `batch` work, Python's fault
handler (`faulthandler`) is pointed at `crashes/<pid>.log` in the user's
cache folder (`DUOLOGUE_CACHE_DIR`, else e.g. ~/.cache/duologue; not beside
the store, which a command that fails early must not create); on a fatal
signal it writes the signal and every thread's stack there. A process that
ends normally removes its file; a run's note only reads a file written after
the run started (a pid used again later is another process). So the next command that finds a
killed run (`show`, `ls`, `resume`) reads its process's file, if any, and
says in one line what happened and what to try (`crash_note`).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..folders import cache_dir
from .status import process_alive

if TYPE_CHECKING:
    from .core import Store

# What to try when llama.cpp crashed: its extra buffer types (guard.py) and the weights are the known causes.
EMBEDDED_ADVICE = (
    "try DUOLOGUE_EXTRA_BUFTS=off (llama.cpp's AMX and repacked weights) or another DUOLOGUE_WEIGHTS (q4_1, q8_0, bf16)"
)


KEEP_DAYS = 30  # a crash record is kept this long

# How faulthandler names the fatal signals it handles.
SIGNALS = ("Segmentation fault", "Bus error", "Illegal instruction", "Floating point exception", "Aborted")


def crash_dir() -> Path:
    return cache_dir() / "crashes"


@contextlib.contextmanager
def recording_crashes() -> Iterator[None]:
    """Inside this block a fatal signal leaves this process's stacks in crashes/<pid>.log in the cache folder."""
    folder = crash_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _sweep(folder)
        log = open(folder / f"{os.getpid()}.log", "w")  # kept open: the handler writes to it
    except OSError:  # a read-only folder: run without the record
        yield
        return
    was_enabled = faulthandler.is_enabled()
    faulthandler.enable(log, all_threads=True)
    try:
        yield
    finally:
        faulthandler.disable()
        if was_enabled:  # whoever had it before (pytest, python -X faulthandler) gets it back, on stderr
            faulthandler.enable(sys.__stderr__ or sys.stderr)
        log.close()
        with contextlib.suppress(OSError):
            os.unlink(log.name)


def _sweep(folder: Path) -> None:
    """Empty files of processes that are gone (killed from outside: they had nothing to say), and records
    older than KEEP_DAYS."""
    now = time.time()
    for file in folder.glob("*.log"):
        with contextlib.suppress(OSError, ValueError):
            st = file.stat()
            if (st.st_size == 0 and not process_alive(int(file.stem))) or now - st.st_mtime > KEEP_DAYS * 86400:
                file.unlink()


@dataclass(frozen=True)
class Crash:
    signal: str  # as Python names it: "Segmentation fault", "Aborted", …
    in_llama: bool  # the crashing thread was in the embedded engine (llama.cpp)
    log: Path


def find_crash(pid: int | None, since: datetime | None = None) -> Crash | None:
    """The crash record of process `pid`, when it left one (written after `since`, the run's start: a pid
    used again later is another process)."""
    if not pid:
        return None
    log = crash_dir() / f"{pid}.log"
    try:
        text = log.read_text(errors="replace")
        written = log.stat().st_mtime
    except OSError:
        return None
    if not text.strip() or (since is not None and written < since.timestamp()):
        return None
    # faulthandler's first line names the signal (twice, interleaved, when two threads crashed at once)
    first = text.strip().splitlines()[0]
    signal = next((name for name in SIGNALS if name in first), "a fatal signal")
    current = text.split("Current thread", 1)[1] if "Current thread" in text else text
    current = current.split("\n\n", 1)[0]
    in_llama = any(mark in current for mark in ("backends/embedded", "llama_cpp"))
    return Crash(signal, in_llama, log)


def crash_note(run_id: str, pid: int | None, since: datetime | None = None) -> str | None:
    """One line on why a killed run's process ended, and what to try; None when it left no record."""
    crash = find_crash(pid, since)
    if crash is None:
        return None
    if crash.in_llama:
        return (
            f"run {run_id}: its process crashed inside llama.cpp ({crash.signal}); {EMBEDDED_ADVICE}, "
            f"then `duologue resume {run_id}` (stacks: {crash.log})"
        )
    return f"run {run_id}: its process crashed ({crash.signal}); stacks in {crash.log}; `duologue resume {run_id}`"


def killed_run_note(store: Store, run_ref: str) -> str | None:
    """crash_note for a run of the store, when it shows as killed."""
    run = store.get_run(run_ref, with_messages=False)
    return crash_note(run.id, store.run_pid(run.id), run.started_at) if run.status == "killed" else None
