"""Import formats: one module per format in this package, found by looking (like exports/).

Each module here defines `FORMAT = ImportFormat(...)`: a name (what `duologue import --format`
takes), one line of description, the file suffixes it usually has, a cheap `detect(path) -> bool`
(sniffing the first bytes; a whole file only when it is small) and `read(path, options) -> list[Run]`.
`duologue import PATH` tries every format's `detect` and reads the file with the one that
recognises it. Third-party packages add formats through the entry-point group `duologue.importers`
(an entry point naming an ImportFormat); a program can call `register_import_format`.

Readers raise TranscriptFormatError with one line naming what is wrong (a line number where the
format has lines); `read_runs` prefixes the path and the format's name. Nothing is stored here:
the API stores every run of a file in one transaction (`Store.create_runs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DuologueError, NoMessageError, TranscriptFormatError
from ..plugins import Registry, package_parts
from ..records import Run
from .common import renamed


@dataclass(frozen=True)
class ImportOptions:
    """What `duologue import` passes on: which conversation of a many-conversation file, new names."""

    conversation: str | None = None  # llm logs.db: one conversation's id
    names: tuple[str, ...] | None = None  # the participants' names, in speaking order (foreign formats)


@dataclass(frozen=True)
class ImportFormat:
    name: str
    description: str
    suffixes: tuple[str, ...]  # lower case, with the dot: used only when no format recognises the file
    detect: Callable[[Path], bool]
    read: Callable[[Path, ImportOptions], list[Run]]
    foreign: bool = True  # not duologue's own: the names may be changed (--names)
    conversations: bool = False  # a file of several conversations that --conversation picks from
    keeps_ids: bool = False  # its runs keep the ids the file gives them (duologue's JSON exports)


# Every import format: this package's modules first, then plugins' (entry points), then registered ones.
IMPORT_FORMATS: Registry[ImportFormat] = Registry(
    "import format",
    ImportFormat,
    "duologue.importers",
    builtins=package_parts(__name__, __path__, "FORMAT", ImportFormat),
)


def import_formats() -> Registry[ImportFormat]:
    return IMPORT_FORMATS


def register_import_format(fmt: ImportFormat, *, replace: bool = False) -> None:
    """Add a format from a program (plugins in packages use the entry-point group instead)."""
    IMPORT_FORMATS.register(fmt, replace=replace)


def unregister_import_format(name: str) -> None:
    IMPORT_FORMATS.unregister(name)


def import_format(name: str) -> ImportFormat:
    formats = import_formats()
    if name not in formats:
        broken = formats.why_missing(name)
        raise DuologueError(broken or f"unknown import format '{name}' (one of {', '.join(formats)})")
    return formats[name]


def detect_format(path: Path) -> ImportFormat | None:
    """The format that recognises the file, else the one its suffix suggests, else None."""
    formats = import_formats().values()
    for fmt in formats:
        try:
            if fmt.detect(path):
                return fmt
        except (OSError, UnicodeDecodeError, ValueError):
            continue  # a sniffer that cannot read the file does not recognise it
    suffix = path.suffix.lower()
    return next((f for f in formats if suffix in f.suffixes), None)


def read_runs(path: str | Path, fmt: str | None = None, options: ImportOptions | None = None) -> list[Run]:
    """Every run in the file, read with the format named (or the one detected)."""
    path = Path(path)
    options = options or ImportOptions()
    if not path.exists():
        raise DuologueError(f"{path}: no such file")
    if path.is_dir():
        raise DuologueError(f"{path}: a folder, not a file")
    chosen = import_format(fmt) if fmt else detect_format(path)
    if chosen is None:
        raise TranscriptFormatError(
            f"{path}: cannot tell its format; name it with --format (one of {', '.join(import_formats())})"
        )
    if options.conversation is not None and not chosen.conversations:
        raise DuologueError(f"--conversation picks one conversation of a many-conversation file, not of {chosen.name}")
    if options.names is not None and not chosen.foreign:
        raise DuologueError(f"--names renames the speakers of another tool's file, not of duologue's {chosen.name}")
    try:
        runs = chosen.read(path, options)
    except UnicodeDecodeError:
        raise TranscriptFormatError(f"{path}: not UTF-8 text") from None
    except NoMessageError as err:
        raise NoMessageError(f"{path}: {err}") from None
    except TranscriptFormatError as err:
        raise TranscriptFormatError(f"{path}: not a valid {chosen.name} file: {err}") from None
    except OSError as err:
        raise DuologueError(f"{path}: cannot read: {err.strerror or err}") from None
    if not runs:
        raise TranscriptFormatError(f"{path}: not a valid {chosen.name} file: it holds no conversation")
    if options.names is not None:
        try:
            runs = [renamed(run, options.names) for run in runs]
        except TranscriptFormatError as err:
            raise TranscriptFormatError(f"{path}: {err}") from None
    return runs


def single_run(path: Path) -> Run:
    """The one conversation of a file (for `analyze FILE`), in the format detected; a file no format
    recognises is read as duologue's Markdown transcript (its parser says what is wrong with it). A file
    of several conversations is an error."""
    fmt = detect_format(path)
    runs = read_runs(path, fmt.name if fmt is not None else "md")
    if len(runs) != 1:
        raise DuologueError(f"{path} holds {len(runs)} conversations: `duologue import` it, then analyze a run")
    return runs[0]


__all__ = [
    "ImportFormat",
    "ImportOptions",
    "detect_format",
    "import_format",
    "import_formats",
    "read_runs",
    "register_import_format",
    "single_run",
    "unregister_import_format",
]
