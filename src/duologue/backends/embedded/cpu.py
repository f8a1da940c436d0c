"""The cores this process may run on, and how many of them other programs leave idle."""

from __future__ import annotations

import os
import time

PROBE_INTERVAL = 0.5  # seconds between looks at how busy the other programs keep the CPUs


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine_busy_seconds() -> float | None:
    """CPU seconds all programs have used since boot, from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CoreProbe:
    """The cores other programs have left idle lately: the machine's busy time less this process's own."""

    def __init__(self, cores: int | None = None):
        self.cores = cores or usable_cores()
        self._free = self.cores
        self._last: tuple[float, float, float] | None = None  # (when, machine busy s, own CPU s)

    def free_cores(self) -> int:
        """At least one; looked at again at most every PROBE_INTERVAL (Linux; elsewhere all of them)."""
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < PROBE_INTERVAL:
            return self._free
        busy = machine_busy_seconds()
        own = sum(os.times()[:2])
        if busy is None:
            return self._free
        if self._last is not None:
            when, busy0, own0 = self._last
            others = ((busy - busy0) - (own - own0)) / (now - when)
            self._free = max(1, self.cores - int(others + 0.5))
        self._last = (now, busy, own)
        return self._free
