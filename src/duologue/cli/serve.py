"""The viewer's command: serve."""

from __future__ import annotations

import click
from rich.text import Text

from ..errors import DuologueError
from .common import db_option, err_console

# What the viewer needs beyond the core: the `viewer` extra.
VIEWER_MODULES = ("starlette", "uvicorn", "jinja2")


def require_viewer() -> None:
    """One line naming the extra when the viewer's libraries are not installed."""
    import importlib.util

    def importable(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    missing = [m for m in VIEWER_MODULES if not importable(m)]
    if missing:
        raise DuologueError(f"the viewer needs {', '.join(missing)}: pip install 'duologue[viewer]'")


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. The viewer has no login: keep it on this machine.",
)
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on (0: any free port).")
@db_option
def serve(host, port, db) -> None:
    """Browse runs and experiments in a local web viewer; runs in progress update live."""
    require_viewer()
    from ..web import serve as serve_viewer

    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(Text(f"warning: anyone who can reach {host} can read this store", style="yellow"))
    serve_viewer(db, host=host, port=port, announce=lambda line: click.echo(line))
