"""Where duologue keeps what is not part of a store: the user's cache folder."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "DUOLOGUE_CACHE_DIR"


def cache_dir() -> Path:
    """$DUOLOGUE_CACHE_DIR, else the platform's user cache folder (~/.cache/duologue on Linux): derived weights
    and the crash guard's verdicts (backends/embedded/), crash records of runs (store/crashes.py)."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("duologue"))
