"""What the viewer computes for a run and keeps: its plots (files, across restarts) and the analyses
it makes on the fly (in memory).

Plots are drawn once per run, message count and duologue version (a run that grew gets new ones, a
finished one keeps its own, a newer duologue may draw them otherwise) into a folder of the plot
cache: `cache/plots/` beside the store by default (`plot_cache_for`). A folder is written whole or
not at all, so viewers sharing a cache never serve half of one.

A run without a stored analysis (imported, killed) is analysed once per run and message count; the
run's pages and its plots share that analysis (the last ANALYSES_KEPT are kept).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from ..records import Run
from ..store import Store
from ..version import __version__

if TYPE_CHECKING:
    from ..analysis import Analysis

PLOTS = ("words", "novelty", "lag-similarity", "similarity")  # the PNGs analysis.write_plots writes
ANALYSES_KEPT = 4


def plot_cache_for(db: Path) -> Path | None:
    """Where the viewer keeps the plots it draws: `cache/plots/` beside the store, when it can write
    there (else None: a temporary folder for this viewer's lifetime)."""
    folder = db.resolve().parent / "cache" / "plots"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


class RunFigures:
    """A viewer's plot cache (a folder) and its analyses made on the fly (in memory)."""

    def __init__(self, db: Path, plot_dir: Path) -> None:
        self.db = db
        self.plot_dir = plot_dir
        self._plot_lock = threading.Lock()
        self._analyses: OrderedDict[tuple[str, int], Analysis] = OrderedDict()
        self._analysis_lock = threading.Lock()

    def plot(self, run_ref: str, name: str) -> Path:
        """The PNG file of plot `name` of a run, drawn now if this run and length has none yet."""
        with Store(self.db, create=False) as store:
            run = store.get_run(run_ref, with_messages=False)
            progress = store.run_progress(run.id)
        count = progress.message_count if progress else 0
        key = hashlib.sha256(f"{run.id}\0{count}\0{__version__}".encode()).hexdigest()[:24]
        folder = self.plot_dir / key
        with self._plot_lock:  # the four images of a page arrive together; draw them once
            if not (folder / f"plot-{name}.png").exists():
                with Store(self.db, create=False) as store:  # the messages only when they are drawn
                    run.messages = store.get_messages(run.id)[:count]
                self._draw(run, folder)
        return folder / f"plot-{name}.png"

    def _draw(self, run: Run, folder: Path) -> None:
        from ..analysis import write_plots

        self.plot_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".drawing-", dir=self.plot_dir))
        try:
            write_plots(self.analysis(run), [m.content for m in run.messages], scratch, "plot")
            if not folder.exists():
                os.replace(scratch, folder)
        except OSError:
            if not folder.exists():  # another viewer put it there first: theirs will do
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def analysis(self, run: Run) -> Analysis:
        """A run's analysis made now (with the embeddings stored with its messages, when there are),
        once per run and message count."""
        key = (run.id, len(run.messages))
        with self._analysis_lock:
            if key in self._analyses:
                self._analyses.move_to_end(key)
                return self._analyses[key]
        from ..analysis.stored import analyze_run, run_vectors

        with Store(self.db, create=False) as store:  # the embeddings stored with the messages
            vectors, _ = run_vectors(store, run)
        analysis = analyze_run(run, vectors=vectors)
        with self._analysis_lock:
            self._analyses[key] = analysis
            while len(self._analyses) > ANALYSES_KEPT:
                self._analyses.popitem(last=False)
        return analysis
