"""The exceptions duologue raises on purpose.

Every `DuologueError` carries a message meant for a person: one line that names
the problem (a `SpecError` with several problems: one self-contained line for
each). The CLI prints it and exits with status 2; nothing else is shown.
"""


class DuologueError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class SpecError(DuologueError):
    """An invalid conversation or experiment spec (flag, TOML file or field).

    `problems` holds one line per problem (str() joins them with newlines).
    """

    def __init__(self, *problems: str):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class UnknownModelError(DuologueError):
    """A model string no backend knows."""


class TranscriptFormatError(DuologueError):
    """A Markdown or JSON transcript that does not follow the format."""


class RunNotFoundError(DuologueError):
    """A run id (or prefix) that matches no run in the store."""


class BackendError(DuologueError):
    """A backend failed for good (after its retries); the message is safe to show."""


class NoMessageError(TranscriptFormatError):
    """A file in a known format that holds no message (a log of a run that wrote only its header): there
    is nothing to import, which is not the same as a damaged file."""
