"""The command line: parses, calls the Python API, prints.

One module per group of commands (runs.py: run, fork, resume, ls; show.py: show; files.py: export, import;
analysis.py: analyze, batch, report, themes, models; judge.py: judge; doctor.py: doctor; search.py: search;
serve.py: serve); options.py builds a conversation's spec from a TOML file and flags. This module is the `duologue`
group itself: it loads each command's module when the command is used, and turns every DuologueError into one line.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from ..errors import DuologueError

# Each command and where it lives (module of this package, name in it). A command's module is imported when
# the command is asked for, so `duologue search` or a shell completion does not import the engine, the
# analysis and numpy first; `duologue --help` imports them all (it shows each command's first line).
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("runs", "run"),
    "fork": ("runs", "fork"),
    "resume": ("runs", "resume"),
    "ls": ("runs", "ls_cmd"),
    "show": ("show", "show"),
    "export": ("files", "export"),
    "import": ("files", "import_cmd"),
    "search": ("search", "search"),
    "models": ("analysis", "models"),
    "doctor": ("doctor", "doctor"),
    "analyze": ("analysis", "analyze"),
    "batch": ("analysis", "batch"),
    "report": ("analysis", "report"),
    "themes": ("analysis", "themes"),
    "judge": ("judge", "judge"),
    "serve": ("serve", "serve"),
    "alias": ("alias", "alias"),
}


class DuologueGroup(click.Group):
    """Loads each command when it is asked for; turns every DuologueError into one line on stderr and exit 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attr = COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(f"{__name__}.{module}"), attr), cmd_name)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DuologueError as err:
            for problem in getattr(err, "problems", None) or [str(err)]:  # a SpecError: one line per problem
                one_line = " ".join(problem.split())
                click.echo(f"duologue: error: {one_line}", err=True)
            ctx.exit(2)


def _version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # click.version_option wants the version when the group is defined; reading it (package metadata) waits
    # until it is asked for.
    if value and not ctx.resilient_parsing:
        from ..version import __version__

        click.echo(f"duologue, version {__version__}")
        ctx.exit()


@click.group(cls=DuologueGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_version, help="Show the version and exit."
)
def cli() -> None:
    """Let language models talk to each other, keep every word, and see when they loop.

    Start with `duologue run`: two embedded SmolLM2 participants talk offline and
    the transcript lands in runs/.
    """
    # API keys (and DUOLOGUE_DB) from .env in the working folder; variables already set win. Read before the
    # command parses its options, so DUOLOGUE_DB there is --db's default.
    if Path(".env").is_file():
        from dotenv import load_dotenv

        load_dotenv(Path(".env"), override=False)


def main() -> None:
    cli(prog_name="duologue")


def __getattr__(name: str) -> Any:
    # What this package re-exports from options.py, imported on first use.
    if name in ("SPEC_OPTIONS", "build_spec", "spec_options", "spec_with_flags"):
        from . import options

        return getattr(options, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SPEC_OPTIONS", "DuologueGroup", "build_spec", "cli", "main", "spec_options", "spec_with_flags"]
