"""The Python API: everything a script or a notebook needs, in one place. Nothing inside duologue imports it.

    import duologue
    run = duologue.run_conversation(duologue.default_spec())
    print(duologue.export_run(run.id, "md"))

The async functions (arun_conversation, aresume_run, afork_run, arun_experiment) are the API; the sync ones
run them with sync.run_sync, which works inside a running event loop too (a notebook). Each name is defined
in the module that owns it (conversations.py, queries.py, batch.py, analysis/, exports/, importers/); this
module gathers them.
"""

from __future__ import annotations

from .analysis.experiment_report import write_experiment_report as experiment_report
from .analysis.stored import analyze_run, analyze_stored_run, run_vectors
from .backends.embedded.pool import EmbeddedPool
from .backends.registry import BackendFactory
from .batch import BatchResult, arun_experiment, run_experiment
from .conversations import (
    afork_run,
    aresume_run,
    arun_conversation,
    check_spec,
    complete_seeds,
    fork_base,
    fork_run,
    resume_run,
    run_conversation,
)
from .engine import Interjector, RunListener, Watcher
from .events import Lineage
from .experiment_spec import ExperimentSpec, load_experiment_spec, plan_experiment
from .exports.experiment import experiment_tables
from .exports.experiment import write_experiment_tables as export_experiment
from .exports.runs import (
    export_run,
    export_runs_jsonl,
    export_runs_parquet,
    iter_run_exports,
    select_runs,
    write_runs_jsonl,
)
from .importers.corpus import import_files
from .importers.saving import import_runs, import_transcript
from .queries import (
    RunTotals,
    find_experiment,
    killed_run_note,
    list_runs,
    load_run,
    load_target,
    run_events,
    run_lineage,
    run_totals,
    save_analysis,
)
from .runner import CurrentRun
from .transcript_writer import transcript_path, write_atomically

__all__ = [
    "BackendFactory",
    "BatchResult",
    "CurrentRun",
    "EmbeddedPool",
    "ExperimentSpec",
    "Interjector",
    "Lineage",
    "RunListener",
    "RunTotals",
    "Watcher",
    "afork_run",
    "analyze_run",
    "analyze_stored_run",
    "aresume_run",
    "arun_conversation",
    "arun_experiment",
    "check_spec",
    "complete_seeds",
    "experiment_report",
    "experiment_tables",
    "export_experiment",
    "export_run",
    "export_runs_jsonl",
    "export_runs_parquet",
    "find_experiment",
    "fork_base",
    "fork_run",
    "import_files",
    "import_runs",
    "import_transcript",
    "iter_run_exports",
    "killed_run_note",
    "list_runs",
    "load_experiment_spec",
    "load_run",
    "load_target",
    "plan_experiment",
    "resume_run",
    "run_conversation",
    "run_events",
    "run_experiment",
    "run_lineage",
    "run_totals",
    "run_vectors",
    "save_analysis",
    "select_runs",
    "transcript_path",
    "write_atomically",
    "write_runs_jsonl",
]
