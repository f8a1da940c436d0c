"""Write docs/cli.md, the command-line reference, from what `duologue … --help` prints (so it cannot drift).

    python docs/cli_reference.py           # write docs/cli.md
    python docs/cli_reference.py --check   # exit 1 when docs/cli.md differs from what --help prints now

tests/test_docs.py runs the check; `make docs` too. The help is rendered 100 columns wide, whatever the
terminal, so the page is the same on every machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click
from click.testing import CliRunner

OUT = Path(__file__).resolve().parent / "cli.md"
WIDTH = 100

HEAD = """# Command-line reference

Every command's `--help`, as `duologue` prints it (this page is written by
`python docs/cli_reference.py` from the commands themselves, and a test checks
that it still matches). The [usage guide](usage.md) shows them at work.
"""


def _help(args: list[str]) -> str:
    from duologue.cli import cli

    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="duologue", terminal_width=WIDTH)
    if result.exit_code != 0:
        raise SystemExit(f"duologue {' '.join(args)} --help failed: {result.output}")
    return result.output.rstrip() + "\n"


def _commands(group: click.Group, ctx: click.Context, path: list[str]):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        yield [*path, name], command
        if isinstance(command, click.Group):
            sub = click.Context(command, info_name=name, parent=ctx)
            yield from _commands(command, sub, [*path, name])


def reference() -> str:
    from duologue.cli import cli

    ctx = click.Context(cli, info_name="duologue")
    parts = [HEAD, "## duologue\n", "```\n" + _help([]) + "```\n"]
    for path, _ in _commands(cli, ctx, []):
        parts.append(f"## duologue {' '.join(path)}\n")
        parts.append("```\n" + _help(path) + "```\n")
    return "\n".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    text = reference()
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run python docs/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
