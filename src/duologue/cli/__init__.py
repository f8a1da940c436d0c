"""The command line: parses, calls the Python API, prints.

One module per group of commands (runs.py: run, fork, resume, ls; show.py: show; files.py: export, import;
analysis.py: analyze, batch, report, themes, models; serve.py: serve); options.py builds a
conversation's spec from a TOML file and flags. This module is the `duologue` group itself: it
turns every DuologueError into one line, and adds the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from dotenv import load_dotenv

from ..errors import DuologueError
from ..version import __version__
from .alias import alias
from .analysis import analyze, batch, models, report, themes
from .files import export, import_cmd
from .options import SPEC_OPTIONS, build_spec, spec_options, spec_with_flags
from .runs import fork, ls_cmd, resume, run
from .serve import serve
from .show import show


class DuologueGroup(click.Group):
    """Turns every DuologueError into one line on stderr (one per problem) and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DuologueError as err:
            for problem in getattr(err, "problems", None) or [str(err)]:  # a SpecError: one line per problem
                one_line = " ".join(problem.split())
                click.echo(f"duologue: error: {one_line}", err=True)
            ctx.exit(2)


@click.group(cls=DuologueGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="duologue")
def cli() -> None:
    """Let language models talk to each other, keep every word, and see when they loop.

    Start with `duologue run`: two embedded SmolLM2 participants talk offline and
    the transcript lands in runs/.
    """
    # API keys (and DUOLOGUE_DB) from .env in the working folder; variables already set win. Read before the
    # command parses its options, so DUOLOGUE_DB there is --db's default.
    load_dotenv(Path(".env"), override=False)


for command in (run, fork, resume, ls_cmd, show, export, import_cmd, models, analyze, batch, report, themes, serve):
    cli.add_command(command)
cli.add_command(alias)


def main() -> None:
    cli(prog_name="duologue")


__all__ = ["SPEC_OPTIONS", "DuologueGroup", "build_spec", "cli", "main", "spec_options", "spec_with_flags"]
