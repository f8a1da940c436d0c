"""Output laid out for the reader: a terminal of any width (80 columns and up), or a pipe.

The width is `--width N` when given, else the terminal's; when stdout is not a
terminal (a pipe, a file) nothing is wrapped at all, so that grep and cut see
whole lines. Tables declare which columns matter: at a narrow width the least
important are left out (and named in a note below the table) or wrapped, and
the ones that identify (ids, statuses, whether a key is set) are never cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import click
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

# A pipe's "width": wide enough that no line is ever wrapped (text is printed with soft_wrap too).
PIPE_WIDTH = 1_000_000
MIN_WIDTH = 40

width_option = click.option(
    "--width",
    type=click.IntRange(min=MIN_WIDTH),
    metavar="N",
    help="Lay the output out for N columns (default: the terminal's width; when piped, lines are never wrapped).",
)


def console_for(width: int | None = None, *, stderr: bool = False) -> Console:
    """A console `width` columns wide; else the terminal's width; else (piped) one that never wraps."""
    if width:
        return Console(width=width, highlight=False, stderr=stderr)
    console = Console(highlight=False, stderr=stderr)
    if console.is_terminal:
        return console
    return Console(highlight=False, stderr=stderr, soft_wrap=True, width=PIPE_WIDTH)


def is_piped(console: Console) -> bool:
    """Whether `console` never wraps (made by console_for for a pipe)."""
    return console.width >= PIPE_WIDTH


@dataclass(frozen=True)
class Col:
    """A table column. priority 0: always shown; the higher, the sooner it is left out at a narrow width.
    wrap: the column may be folded over several lines (down to min_width) rather than left out; a column
    that does not wrap is shown whole or not at all."""

    header: str
    priority: int = 0
    wrap: bool = False
    min_width: int = 10
    justify: str = "left"


Cell = str | Text
PAD = 2  # box=None tables pad each cell by one column on either side


def _natural(cells: Sequence[str | Text], header: str) -> int:
    lines = [
        *header.split("\n"),
        *(line for c in cells for line in (c.plain if isinstance(c, Text) else c).split("\n")),
    ]
    return max(cell_len(line) for line in lines)


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def fit_columns(cols: Sequence[Col], rows: Sequence[Sequence[Cell]], width: int | None) -> dict[int, int]:
    """Column index -> its width, for the columns shown in `width` columns (all of them, at their natural
    width, when `width` is None)."""
    natural = [_natural([r[i] for r in rows], c.header) for i, c in enumerate(cols)]
    if width is None:
        return dict(enumerate(natural))
    need = [min(n, c.min_width) if c.wrap else n for n, c in zip(natural, cols, strict=True)]
    order = sorted(range(len(cols)), key=lambda i: (cols[i].priority, i))
    shown: list[int] = []
    left_out: int | None = None  # the first priority a column was left out at: every later priority goes too
    for i in order:
        if cols[i].priority and not any(_plain(r[i]) for r in rows):
            continue  # an optional column with nothing in it is not worth its width
        if cols[i].priority == 0 or (
            (left_out is None or cols[i].priority <= left_out) and sum(need[j] + PAD for j in [*shown, i]) <= width
        ):
            shown.append(i)
        elif left_out is None:
            left_out = cols[i].priority
    shown.sort()
    widths = {i: natural[i] for i in shown}
    wrapping = [i for i in shown if cols[i].wrap]
    spare = width - sum(natural[i] + PAD for i in shown if not cols[i].wrap) - PAD * len(wrapping)
    if sum(natural[i] for i in wrapping) > spare:
        for i in wrapping:
            widths[i] = need[i]
        spare -= sum(need[i] for i in wrapping)
        # The spare columns shared out, the least wanting first, so that what one cannot use goes to the next.
        wanting = sorted(wrapping, key=lambda i: natural[i] - need[i])
        for k, i in enumerate(wanting):
            share = max(0, spare) // (len(wanting) - k)
            extra = min(natural[i] - need[i], share)
            widths[i] += extra
            spare -= extra
    return widths


def print_table(
    console: Console,
    cols: Sequence[Col],
    rows: Sequence[Sequence[Cell]],
    *,
    title: str | None = None,
    hint: str = "",
) -> list[str]:
    """Print the rows in as many of the columns as fit; returns the headers left out (and, with `hint`,
    prints a note naming them, the width that shows them all, and `hint`)."""
    # A header's line breaks are where it may break at a narrow width; with room for every column, or piped,
    # each header is one line.
    one_line = [replace(c, header=c.header.replace("\n", " ")) for c in cols]
    natural = fit_columns(one_line, rows, None)
    if is_piped(console) or sum(w + PAD for w in natural.values()) <= console.width:
        cols = one_line
    widths = fit_columns(cols, rows, None if is_piped(console) else console.width)
    table = Table(box=None, header_style="bold", title=title, title_justify="left")
    for i, c in enumerate(cols):
        if i in widths:
            table.add_column(
                c.header,
                width=widths[i],
                no_wrap=not c.wrap,
                overflow="fold",
                justify=c.justify,  # type: ignore[arg-type]
            )
    for r in rows:
        table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for i, cell in enumerate(r) if i in widths))
    print_trimmed(console, table)
    hidden = [c.header for i, c in enumerate(cols) if i not in widths and any(_plain(r[i]) for r in rows)]
    if hidden and hint:
        every = sum(w + PAD for w in natural.values())
        note = f"left out at {console.width} columns: {', '.join(hidden)} (--width {every} shows them; {hint})"
        console.print(Text(note, style="dim"))
    return hidden


def print_trimmed(console: Console, renderable) -> None:
    """Print without the spaces a table pads its lines' ends with (they only get in the way of grep and cut)."""
    with console.capture() as captured:
        console.print(renderable)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
