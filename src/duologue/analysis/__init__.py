"""Analysis of conversations: normalising text, loop detection, metrics, reports.

Batch functions take a finished transcript; `LoopWatcher` and `MetricsTracker`
take one message at a time during a live run and agree with them.
"""

from .loops import (
    ExactLoop,
    LoopEvent,
    LoopParams,
    LoopWatcher,
    NearLoop,
    detect_exact_loop,
    detect_near_loop,
    loop_kind,
)
from .metrics import DEFAULT_LEXICON, MessageMetrics, MetricsTracker, compute_metrics
from .report import (
    Analysis,
    analysis_to_dict,
    analyze,
    format_summary,
    similarity_matrix,
    write_plots,
)
from .text import char_ngrams, normalize, overlap, word_ngrams, words

__all__ = [
    "DEFAULT_LEXICON",
    "Analysis",
    "ExactLoop",
    "LoopEvent",
    "LoopParams",
    "LoopWatcher",
    "MessageMetrics",
    "MetricsTracker",
    "NearLoop",
    "analysis_to_dict",
    "analyze",
    "char_ngrams",
    "compute_metrics",
    "detect_exact_loop",
    "detect_near_loop",
    "format_summary",
    "loop_kind",
    "normalize",
    "overlap",
    "similarity_matrix",
    "word_ngrams",
    "words",
    "write_plots",
]
