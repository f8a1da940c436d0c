"""duologue: let language models talk to each other, keep every word, and see when they loop.

The names below are imported on first use (PEP 562), so `import duologue.store` or the
`duologue` command does not load the engine, the analysis and numpy it does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends.embedded.pool import EmbeddedPool as EmbeddedPool
    from .batch import arun_experiment as arun_experiment
    from .batch import run_experiment as run_experiment
    from .conversations import afork_run as afork_run
    from .conversations import aresume_run as aresume_run
    from .conversations import arun_conversation as arun_conversation
    from .conversations import fork_base as fork_base
    from .conversations import fork_run as fork_run
    from .conversations import resume_run as resume_run
    from .conversations import run_conversation as run_conversation
    from .errors import DuologueError as DuologueError
    from .experiment_spec import ExperimentSpec as ExperimentSpec
    from .experiment_spec import load_experiment_spec as load_experiment_spec
    from .exports.runs import export_run as export_run
    from .exports.runs import export_runs_jsonl as export_runs_jsonl
    from .exports.runs import export_runs_parquet as export_runs_parquet
    from .exports.runs import iter_run_exports as iter_run_exports
    from .exports.runs import write_runs_jsonl as write_runs_jsonl
    from .importers.saving import import_runs as import_runs
    from .importers.saving import import_transcript as import_transcript
    from .queries import list_runs as list_runs
    from .queries import load_run as load_run
    from .queries import run_totals as run_totals
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
    "EmbeddedPool": ".backends.embedded.pool",
    "arun_experiment": ".batch",
    "run_experiment": ".batch",
    "afork_run": ".conversations",
    "aresume_run": ".conversations",
    "arun_conversation": ".conversations",
    "fork_base": ".conversations",
    "fork_run": ".conversations",
    "resume_run": ".conversations",
    "run_conversation": ".conversations",
    "DuologueError": ".errors",
    "ExperimentSpec": ".experiment_spec",
    "load_experiment_spec": ".experiment_spec",
    "export_run": ".exports.runs",
    "export_runs_jsonl": ".exports.runs",
    "export_runs_parquet": ".exports.runs",
    "iter_run_exports": ".exports.runs",
    "write_runs_jsonl": ".exports.runs",
    "import_runs": ".importers.saving",
    "import_transcript": ".importers.saving",
    "list_runs": ".queries",
    "load_run": ".queries",
    "run_totals": ".queries",
    "Message": ".records",
    "Run": ".records",
    "ConversationSpec": ".spec",
    "Participant": ".spec",
    "default_spec": ".spec",
    "load_conversation_spec": ".spec",
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
