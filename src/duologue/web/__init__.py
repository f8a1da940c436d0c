"""The viewer: `duologue serve`, a local web app over the store (runs, a run as a chat, live runs, experiments)."""

from .app import ExperimentReport, create_app, make_server, serve

__all__ = ["ExperimentReport", "create_app", "make_server", "serve"]
