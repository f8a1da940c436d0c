"""The thread that runs llama.cpp's decode steps for its engines, one step each in turn."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ...errors import BackendError
from .cpu import CoreProbe


class Steps(Protocol):
    """What a runner asks of an engine (engine.SharedLlamaEngine)."""

    path: Path

    @property
    def leased(self) -> int: ...

    def _has_work(self) -> bool: ...

    def tick(self) -> bool: ...

    def fail_all(self, err: BaseException) -> None: ...


class LlamaThread:
    """A thread that runs llama.cpp's decoding for its engines, one step each in turn.

    llama.cpp's CPU backend runs on OpenMP, which keeps a team of threads for
    each thread that calls it. Two callers taking turns (two engines, or the
    executor threads the older backend runs in) leave two teams getting in each
    other's way: measured on 2 cores, decoding in turns from two threads ran at
    70 tokens/s against 170 from one. So every engine's steps run here, in turn.

    It also picks how many threads llama.cpp uses. OpenMP threads wait for each
    other at every operation, so when other programs keep a core busy a step
    with two threads stalls whenever one is descheduled (measured with one other
    llama.cpp process: 31 tokens/s on two threads, 66 on one, and single steps of
    seconds). Engines without a fixed thread count use the cores the others leave.
    All such engines share the process's one runner (`llama_thread()`).

    A pool that splits conversations over one-thread shards (see EmbeddedPool)
    gives each shard a private runner: one-thread steps use no OpenMP team, so
    shards on different cores do not get in each other's way. A private runner's
    thread ends with its engine. Once a shard's siblings have no participants
    left (the end of a batch) it borrows their cores, and only then starts an
    OpenMP team of its own (`threads_for`).
    """

    def __init__(self, private: bool = False):
        self.private = private
        self.lock = threading.Lock()  # guards every engine's inbox and leases too: one lock, no ordering issues
        self.wake = threading.Condition(self.lock)
        self._engines: list[Steps] = []
        self._probe = CoreProbe()
        self.cores = self._probe.cores
        self._thread: threading.Thread | None = None  # started by the first engine that loads

    def add(self, engine: Steps) -> None:
        with self.lock:
            if engine not in self._engines:
                self._engines.append(engine)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="duologue-llama", daemon=True)
                self._thread.start()

    def free_cores(self) -> int:
        """The cores other programs have left idle lately (Linux; elsewhere all of them)."""
        return self._probe.free_cores()

    def threads_for(self, fixed: int | None, siblings: Sequence[Steps] = ()) -> int:
        """The threads an engine's next step uses: its fixed count, else the cores other programs leave
        free. A one-thread shard whose sibling shards have no participants left (the end of a batch:
        their conversations ended first) also takes their cores, as far as other programs leave them."""
        n = fixed or self.free_cores()
        idle = sum(1 for s in siblings if not s.leased)
        return max(n, min(n + idle, self.free_cores())) if idle else n

    def _run(self) -> None:
        while True:
            with self.wake:
                while not (ready := [e for e in self._engines if e._has_work()]):
                    self.wake.wait()
            for engine in ready:
                try:
                    alive = engine.tick()
                except Exception as err:  # pragma: no cover - one engine's bug must not stop the others
                    engine.fail_all(BackendError(f"{engine.path.name}: {type(err).__name__}: {err}"))
                    alive = True
                if not alive:
                    with self.lock:
                        self._engines.remove(engine)
                        if self.private and not self._engines:
                            return


_llama_thread: LlamaThread | None = None
_llama_thread_lock = threading.Lock()


def llama_thread() -> LlamaThread:
    # Process-wide on purpose: so is OpenMP's thread team (see LlamaThread).
    global _llama_thread
    with _llama_thread_lock:
        if _llama_thread is None:
            _llama_thread = LlamaThread()
        return _llama_thread
