"""What the experiment report's plots share: one figure per plot and per setting the runs are split by
(the pairing, then each varied path), file names, group labels, legends below the axes (never over a
curve or a bar), and axes scaled to the data."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..vocabulary import shown_text

LABEL_CHARS = 48  # a group's label in a legend (an opener can be a paragraph); the report's tables have it whole


def plot_path(folder: Path, stem: str, plot: str, setting: str = "pairing") -> Path:
    """`<stem>-<plot>.png` for the runs split by pairing, `<stem>-<plot>-by-<setting>.png` for a varied path."""
    if setting == "pairing":
        return folder / f"{stem}-{plot}.png"
    return folder / f"{stem}-{plot}-by-{re.sub(r'[^A-Za-z0-9_-]+', '-', setting).strip('-')}.png"


def group_label(name: Any, runs: int | None = None) -> str:
    """A group as a legend names it: its value (a blank opener quoted), cut to LABEL_CHARS, and its size."""
    text = shown_text(name) or "(none)"
    text = " ".join(text.split())
    if len(text) > LABEL_CHARS:
        text = text[: LABEL_CHARS - 1] + "…"
    return f"{text} (n={runs})" if runs is not None else text


def new_figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def legend_below(fig: Any, handles: Sequence[Any], names: Sequence[str], *, title: str | None = None) -> float:
    """A legend under the axes, in as many columns as fit, growing the figure to hold it; returns the
    share of the figure's height it takes (leave it out of tight_layout's rect)."""
    if not handles:
        return 0.0
    longest = max(len(n) for n in names)
    columns = max(1, min(len(names), int(fig.get_figwidth() * 100 // max(7 * longest + 40, 1))))
    rows = math.ceil(len(names) / columns)
    extra = 0.22 * rows + (0.25 if title else 0.1)
    height = fig.get_figheight()
    fig.set_figheight(height + extra)
    fig.legend(
        handles,
        names,
        loc="lower center",
        ncol=columns,
        fontsize="small",
        frameon=False,
        title=title,
        title_fontsize="small",
    )
    return extra / (height + extra)


def share_limit(values: Iterable[float]) -> float:
    """The upper limit of an axis of shares (0..1) scaled to its data: a little over the largest value."""
    top = max(values, default=0.0)
    return min(1.0, max(0.05, top * 1.15)) if top < 0.87 else 1.0


def save(fig: Any, path: Path, bottom: float = 0.0) -> Path:
    """Lay the figure out above its legend (`bottom`: the share legend_below returned) and write it."""
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path)
    return path
