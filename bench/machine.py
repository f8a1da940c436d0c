"""The machine a benchmark ran on, in one line (for every table's heading)."""

from __future__ import annotations

import platform
from pathlib import Path


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from duologue.backends.embedded.cpu import usable_cores

    cores = usable_cores()
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cores} cores ({cpu}){mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"
