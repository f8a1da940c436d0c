"""duologue: let language models talk to each other, keep every word, and see when they loop."""

from .api import (
    afork_run,
    aresume_run,
    arun_conversation,
    export_run,
    fork_base,
    fork_run,
    import_runs,
    import_transcript,
    list_runs,
    load_run,
    resume_run,
    run_conversation,
    run_totals,
)
from .errors import DuologueError
from .records import Message, Run
from .spec import ConversationSpec, Participant, default_spec, load_conversation_spec
from .store import Store
from .version import __version__

__all__ = [
    "__version__",
    "arun_conversation",
    "aresume_run",
    "export_run",
    "import_runs",
    "import_transcript",
    "list_runs",
    "load_run",
    "resume_run",
    "run_conversation",
    "run_totals",
    "afork_run",
    "fork_base",
    "fork_run",
    "DuologueError",
    "Message",
    "Run",
    "ConversationSpec",
    "Participant",
    "default_spec",
    "load_conversation_spec",
    "Store",
]
