"""The SQLite store: the one owner of duologue's SQL.

Everything else (the API, the engine, batches, the CLI, the viewer) calls a
`Store` method and gets typed records back (store/rows.py); no other module
runs a query. The package's parts:

- core.py: the Store class; runs, messages, events, analyses; transactions.
- schema.py: the migrations, each applied once, in one transaction.
- listing.py: lists of runs (filtered, sorted, paged) for `ls` and the viewer.
- experiments.py: experiments and what their reports and tables read.
- labels.py: other labellers' labels of the messages (`duologue judge`).
- rows.py: the typed records the queries return.
"""

from .core import DEFAULT_DB, Store, StoreFullError, cell_key
from .labels import Labelling
from .listing import KILLED, NULLABLE, RUNNING, SORTS, STATUSES, RunFilter
from .rows import (
    PER_PAGE,
    CellRun,
    ExactLoopRecord,
    ExperimentRow,
    ExperimentRun,
    FilterChoices,
    LoopSummary,
    MessageRow,
    MessageTheme,
    NearLoopRecord,
    RunPage,
    RunProgress,
    RunRow,
    SemanticSummary,
)
from .schema import MIGRATIONS
from .status import held_elsewhere, process_alive, shown_status

__all__ = [
    "DEFAULT_DB",
    "Store",
    "StoreFullError",
    "cell_key",
    "KILLED",
    "NULLABLE",
    "RUNNING",
    "SORTS",
    "STATUSES",
    "RunFilter",
    "PER_PAGE",
    "CellRun",
    "ExactLoopRecord",
    "ExperimentRow",
    "ExperimentRun",
    "FilterChoices",
    "Labelling",
    "LoopSummary",
    "MessageRow",
    "MessageTheme",
    "NearLoopRecord",
    "RunPage",
    "RunProgress",
    "RunRow",
    "SemanticSummary",
    "MIGRATIONS",
    "held_elsewhere",
    "process_alive",
    "shown_status",
]
