"""duologue: let language models talk to each other, keep every word, and see when they loop."""

__version__ = "0.1.0"

from .api import (  # noqa: E402  (the version must exist before the engine imports it)
    arun_conversation,
    aresume_run,
    afork_run,
    export_run,
    fork_base,
    fork_run,
    import_transcript,
    list_runs,
    load_run,
    resume_run,
    run_conversation,
    run_totals,
)
from .errors import DuologueError  # noqa: E402
from .records import Message, Run  # noqa: E402
from .spec import ConversationSpec, Participant, default_spec, load_conversation_spec  # noqa: E402
from .store import Store  # noqa: E402

__all__ = [
    "__version__", "arun_conversation", "aresume_run", "export_run", "import_transcript", "list_runs",
    "load_run", "resume_run", "run_conversation", "run_totals", "afork_run", "fork_base", "fork_run",
    "DuologueError", "Message", "Run",
    "ConversationSpec", "Participant", "default_spec", "load_conversation_spec", "Store",
]
