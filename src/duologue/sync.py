"""The synchronous face of the async API: run a coroutine to its end from plain code or a notebook.

`run_conversation`, `resume_run`, `fork_run` and `run_experiment` wrap their async
versions with `run_sync`. Where no event loop runs in the calling thread (a script)
it is `asyncio.run`. Where one does (a Jupyter notebook, or any `async def`), the
coroutine runs on a new loop in a worker thread and the caller waits for it; a
KeyboardInterrupt while waiting (the notebook's stop button) cancels it there, so a
run is stored as `interrupted` as with Ctrl-C in the terminal. From async code,
await the async functions (`arun_conversation`, …) instead: they do not block the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def loop_running() -> bool:
    """Whether an event loop runs in this thread (as in a notebook's cells)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to its end and return its result, whether or not a loop runs in this thread."""
    if not loop_running():
        return asyncio.run(coro)
    started: dict[str, Any] = {}

    async def main() -> T:
        started["loop"], started["task"] = asyncio.get_running_loop(), asyncio.current_task()
        return await coro

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="duologue-sync") as pool:
        future = pool.submit(asyncio.run, main())
        try:
            return future.result()
        except KeyboardInterrupt:
            if "task" in started:
                started["loop"].call_soon_threadsafe(started["task"].cancel)
            try:
                future.result()  # wait for the run to be stored as interrupted
            except (asyncio.CancelledError, Exception):  # noqa: BLE001  (the interrupt is what the caller hears)
                pass
            raise
