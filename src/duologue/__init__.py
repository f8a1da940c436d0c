"""duologue: let language models talk to each other, keep every word, and see when they loop.

The names below are imported on first use (PEP 562), so `import duologue.store` or the
`duologue` command does not load the engine, the analysis and numpy it does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import afork_run as afork_run
    from .api import aresume_run as aresume_run
    from .api import arun_conversation as arun_conversation
    from .api import export_run as export_run
    from .api import fork_base as fork_base
    from .api import fork_run as fork_run
    from .api import import_runs as import_runs
    from .api import import_transcript as import_transcript
    from .api import list_runs as list_runs
    from .api import load_run as load_run
    from .api import resume_run as resume_run
    from .api import run_conversation as run_conversation
    from .api import run_totals as run_totals
    from .api_exports import export_runs_jsonl as export_runs_jsonl
    from .api_exports import export_runs_parquet as export_runs_parquet
    from .api_exports import iter_run_exports as iter_run_exports
    from .api_exports import write_runs_jsonl as write_runs_jsonl
    from .errors import DuologueError as DuologueError
    from .records import Message as Message
    from .records import Run as Run
    from .spec import ConversationSpec as ConversationSpec
    from .spec import Participant as Participant
    from .spec import default_spec as default_spec
    from .spec import load_conversation_spec as load_conversation_spec
    from .store import Store as Store
    from .version import __version__ as __version__

# name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(
        (
            "afork_run",
            "aresume_run",
            "arun_conversation",
            "export_run",
            "fork_base",
            "fork_run",
            "import_runs",
            "import_transcript",
            "list_runs",
            "load_run",
            "resume_run",
            "run_conversation",
            "run_totals",
        ),
        ".api",
    ),
    **dict.fromkeys(
        ("export_runs_jsonl", "export_runs_parquet", "iter_run_exports", "write_runs_jsonl"), ".api_exports"
    ),
    "DuologueError": ".errors",
    "Message": ".records",
    "Run": ".records",
    **dict.fromkeys(("ConversationSpec", "Participant", "default_spec", "load_conversation_spec"), ".spec"),
    "Store": ".store",
    "__version__": ".version",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = sorted(_EXPORTS)
