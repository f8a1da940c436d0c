"""Whether a run's writer still runs: a "running" run whose process is gone was killed."""

from __future__ import annotations

import os


def process_alive(pid: int | None) -> bool:
    """Whether process `pid` (a run's writer) still exists on this machine."""
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def held_elsewhere(pid: int | None) -> bool:
    """Whether another process (not this one) that still exists holds a run: one not to resume here."""
    return bool(pid) and pid != os.getpid() and process_alive(pid)


def shown_status(status: str, pid: int | None) -> str:
    """A run's status as people should see it: a "running" run whose process is gone was killed."""
    return "killed" if status == "running" and not process_alive(pid) else status
