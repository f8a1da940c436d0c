"""`duologue search`: full-text search over every stored message."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import db_option, print_json
from .completion import complete_run_id

if TYPE_CHECKING:
    from rich.text import Text


@click.command()
@click.argument("query")
@click.option("--run", "run_ref", shell_complete=complete_run_id, help="Only this run (id, unique prefix or @last).")
@click.option("--experiment", help="Only the runs of this experiment.")
@click.option("--speaker", help="Only messages by this participant.")
@click.option("-n", "--limit", type=click.IntRange(1), default=20, show_default=True, help="How many messages.")
@click.option("--raw", is_flag=True, help="QUERY is SQLite FTS5 syntax (AND, OR, NOT, NEAR(...), prefix*).")
@click.option("--json", "as_json", is_flag=True, help="Print the matches as JSON.")
@db_option
def search(query, run_ref, experiment, speaker, limit, raw, as_json, db) -> None:
    """Find messages by their text, across every run in the store, best match first.

    Every word must appear, in any order; "quoted words" must appear together in that
    order; word* matches words that start with it. Case and accents are ignored.

    \b
      duologue search "resting silent"
      duologue search '"thank you" forever' --experiment open-ended
      duologue search 'grat*' --run @last --speaker smol-2
    """
    from ..search import MARK_END, MARK_START, search_messages

    if not Path(db).exists():
        if as_json:
            print_json({"query": query, "total": 0, "runs": 0, "matches": []})
        else:
            click.echo(f"no runs yet in {db}: nothing to search")
        return
    result = search_messages(query, db=db, run=run_ref, experiment=experiment, speaker=speaker, limit=limit, raw=raw)
    if as_json:
        print_json(
            {
                "query": query,
                "total": result.total,
                "runs": result.runs,
                "matches": [
                    {
                        "run_id": h.run_id,
                        "title": h.run_title,
                        "index": h.index,
                        "speaker": h.speaker,
                        "snippet": h.plain_snippet(),
                    }
                    for h in result.hits
                ],
            }
        )
        return
    if not result.hits:
        click.echo(f"no message matches {query!r}")
        return
    shown = f" (the best {len(result.hits)})" if len(result.hits) < result.total else ""
    plural = "message" if result.total == 1 else "messages"
    click.echo(f"{result.total} {plural} in {result.runs} run(s) match {query!r}{shown}")
    if not sys.stdout.isatty():  # one plain line per match: for grep, cut and files
        for h in result.hits:
            click.echo(f"{h.run_id}  #{h.index}  {h.speaker}: {' '.join(h.plain_snippet().split())}")
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    for h in result.hits:
        line = Text(f"{h.run_id}  #{h.index}  {h.speaker}: ", style="dim")
        line.append_text(_marked(" ".join(h.snippet.split()), MARK_START, MARK_END))
        console.print(line)


def _marked(snippet: str, start: str, end: str) -> Text:
    """The snippet as text with its matched words in bold; nothing in it is read as markup."""
    from rich.text import Text

    out = Text()
    for i, piece in enumerate(snippet.replace(end, start).split(start)):
        out.append(piece, style="bold" if i % 2 else "")
    return out
