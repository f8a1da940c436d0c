"""Importing many files at once: folders (recursively), globs and files; a corpus to study.

`import_files` reads every file it is given or finds, stores the runs of the files that read, and says
of every other file why it was skipped (`ImportOutcome`). A folder's files are those a format
recognises by their contents (a folder of logs also holds other files: a UniversalBackrooms folder has
`.json` and `.jsonl` side files); a file named, or matched by a glob, is read with the format its
suffix suggests when none recognises it, so a damaged file is listed with that format's error.

A file imported before is recognised by the SHA-256 of its bytes, kept with each of its runs
(`runs.source_hash`): importing it again, from anywhere, stores nothing new.

`experiment=NAME` groups the runs as a collection: an experiments row whose record says so
(`{"collection": true, "settings": [...]}`), each run in it with a cell of its pairing (the model keys a
UniversalBackrooms header or file name gives, else the participants' models), its template when the
file names one, and its file's hash (which keeps cells apart). `report`, the attractor map, the
viewer's experiment page and the experiment exports then read it as they read an experiment duologue
ran (`batch.report_settings` splits it by the record's settings). Each run of a collection is analysed
as it is stored, as `batch` analyses each run it finishes, so reading a report analyses nothing.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DuologueError
from ..records import Run
from . import ImportFormat, ImportOptions, detect_format, import_format, import_formats, read_runs
from .common import IMPORTED_MODEL, new_ids

GLOB_CHARACTERS = "*?["
COLLECTION_SETTINGS = ("pairing", "template")


@dataclass
class ImportOutcome:
    """What an import did with each file."""

    imported: list[Run] = field(default_factory=list)  # the runs stored, in the order of their files
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why: one line)
    known: list[tuple[Path, list[str]]] = field(default_factory=list)  # (file, its runs already in the store)
    ignored: list[Path] = field(default_factory=list)  # files of a folder that no format recognises
    notes: list[tuple[Path, str]] = field(default_factory=list)  # (file, what was done to read it)
    collection: str | None = None
    joined: list[str] = field(default_factory=list)  # runs imported before that joined the collection
    analysed: int = 0

    @property
    def files(self) -> int:
        """The files that were read (imported, skipped or already in the store)."""
        return len({r.source for r in self.imported}) + len(self.skipped) + len(self.known)


Progress = Callable[[str, int, int], None]  # (what is being done, done, of how many)


def _no_progress(step: str, done: int, total: int) -> None:
    pass


def _recognises(fmt: ImportFormat, path: Path) -> bool:
    try:
        return fmt.detect(path)
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def find_files(paths: Sequence[str | Path], fmt: str | None = None) -> tuple[list[Path], list[Path]]:
    """The files to read, in order (a folder's sorted, each once), and the files of the folders that no
    format (or not `fmt`) recognises. A path that names nothing, and a glob that matches nothing, are errors."""
    chosen = import_format(fmt) if fmt else None
    files: list[Path] = []
    ignored: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path))):
                if chosen is not None:
                    wanted = found.suffix.lower() in chosen.suffixes or _recognises(chosen, found)
                else:
                    wanted = any(_recognises(f, found) for f in import_formats().values())
                (files if wanted else ignored).append(found)
        elif path.exists():
            files.append(path)
        elif any(c in str(given) for c in GLOB_CHARACTERS):
            matches = sorted(Path(p) for p in glob.glob(str(given), recursive=True) if Path(p).is_file())
            if not matches:
                raise DuologueError(f"{given}: matches no file")
            files += matches
        else:
            raise DuologueError(f"{given}: no such file or folder")
    return list(dict.fromkeys(files)), ignored


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def file_hash(path: Path) -> str:
    """The SHA-256 of the file's bytes: what recognises a file imported before."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pairing(run: Run) -> str:
    """The models that talked, in speaking order: the model keys the file names (a UniversalBackrooms
    header or file name), else each participant's model (Run.models: for an imported one, its first
    message's), else its name."""
    keys = (run.spec.get("metadata") or {}).get("models")
    if isinstance(keys, list) and keys:
        return " ↔ ".join(str(k) for k in keys)
    participants = run.spec.get("participants", [])
    return " ↔ ".join(
        str(p["name"] if model in (None, IMPORTED_MODEL) else model)
        for p, model in zip(participants, run.models, strict=True)
    )


def collection_cell(run: Run, digest: str, position: int | None) -> dict[str, Any]:
    """A collection's cell for a run: its pairing, its template when the file names one, and its file
    (the hash, and the run's position when the file holds several) so that no two runs share a cell."""
    cell: dict[str, Any] = {"pairing": pairing(run)}
    template = (run.spec.get("metadata") or {}).get("template")
    if template:
        cell["template"] = str(template)
    cell["file"] = digest[:16] + (f"#{position}" if position is not None else "")
    return cell


def _reason(path: Path, err: DuologueError) -> str:
    """The error's line without the path it starts with (the listing names the file)."""
    text = str(err)
    return text.removeprefix(f"{path}: ")


def import_files(
    paths: Sequence[str | Path],
    *,
    db: str | Path,
    fmt: str | None = None,
    options: ImportOptions | None = None,
    experiment: str | None = None,
    strict: bool = False,
    on_progress: Progress | None = None,
) -> ImportOutcome:
    """Store the runs of every file given or found (folders recursively, globs), each file whole or not
    at all; with `strict`, every run of every file or nothing (the first bad file raises).

    A file already imported (same bytes) stores nothing again. With `experiment`, the new runs join the
    collection of that name (created if missing) and are analysed."""
    from ..store import Store

    progress = on_progress or _no_progress
    options = options or ImportOptions()
    if fmt is not None:
        import_format(fmt)  # an unknown format is an error before any file is read
    files, ignored = find_files(paths, fmt)
    outcome = ImportOutcome(ignored=ignored, collection=experiment)
    if not files:
        return outcome
    hashes: dict[Path, str] = {}
    for k, path in enumerate(files):
        progress("hashing", k, len(files))
        try:
            hashes[path] = file_hash(path)
        except OSError as err:
            if strict:
                raise DuologueError(f"{path}: cannot read: {err.strerror or err}") from None
            outcome.skipped.append((path, f"cannot read: {err.strerror or err}"))
    db = Path(db)
    known: dict[str, list[str]] = {}
    stored: set[str] = set()  # the ids of the store's runs
    taken: set[str] = set()  # the ids of this import's runs
    if db.exists():
        with Store(db, create=False) as store:
            if experiment is not None:
                _check_collection(store, experiment)
            known = store.imported_from(hashes.values())
            stored = set(store.iter_run_ids())
    first_of: dict[str, list[Run]] = {}  # the runs of each file read, by its hash
    runs: list[Run] = []
    joining: list[str] = []  # runs imported before, from files given again
    for k, path in enumerate(hashes):
        progress("reading", k, len(hashes))
        digest = hashes[path]
        if digest in known:
            outcome.known.append((path, known[digest]))
            joining += known[digest]
            continue
        try:
            chosen = import_format(fmt) if fmt else detect_format(path)
            read = read_runs(path, chosen.name if chosen else None, options)
            if digest in first_of:  # a copy of a file read before: its runs once
                outcome.known.append((path, [run.id for run in first_of[digest]]))
                continue
            _give_ids(read, stored, taken, keep=chosen is not None and chosen.keeps_ids, db=db)
        except DuologueError as err:
            if strict:
                raise
            outcome.skipped.append((path, _reason(path, err)))
            continue
        first_of[digest] = read
        for position, run in enumerate(read):
            run.source_hash = digest
            if experiment is not None:
                run.experiment_id = experiment
                run.experiment_cell = collection_cell(run, digest, position if len(read) > 1 else None)
        note = (read[0].spec.get("metadata") or {}).get("import_note")
        if note:
            outcome.notes.append((path, str(note)))
        runs += read
    progress("reading", len(hashes), len(hashes))
    if experiment is None:
        joining = []
    if not runs and not joining:
        return outcome
    with Store(db) as store:
        joined: list[Run] = []
        members: list[Run] = []
        if experiment is not None:
            joined, members = _joining(store, experiment, joining)
            _ensure_collection(store, experiment, [*runs, *joined])
            store.set_experiments([(run.id, experiment, run.experiment_cell or {}) for run in joined])
        progress("storing", 0, len(runs))
        store.create_runs(runs)
        outcome.imported = runs
        if experiment is not None:
            outcome.joined = [run.id for run in joined]
            # Runs of the collection an earlier import stored but did not analyse (it was stopped) are analysed now.
            unanalysed = [r for r in [*joined, *members] if store.run_loops(r.id) is None]
            outcome.analysed = _analyse(store, [*runs, *unanalysed], progress)
    return outcome


def _give_ids(runs: list[Run], stored: set[str], taken: set[str], *, keep: bool, db: Path) -> None:
    """Make the file's runs' ids unique among the store's and this import's (`taken`, which they join).
    A run of duologue's JSON keeps its id: one already there is an error. Another gets a new id made from
    the clock and 3 random bytes, and among hundreds made in a second two may meet."""
    for run in runs if keep else ():
        if run.id in taken:
            raise DuologueError(f"run {run.id} comes twice in what is imported")
        if run.id in stored:
            raise DuologueError(f"run {run.id} is already in {db}")
    for run in runs:
        while not keep and (run.id in taken or run.id in stored):
            run.id = new_ids(1)[0]
        taken.add(run.id)


def _joining(store: Any, name: str, run_ids: list[str]) -> tuple[list[Run], list[Run]]:
    """Of the runs imported before: those in no experiment yet, with their cells in the collection `name`
    (they keep their ids; the caller stores where they now belong), and those already in it."""
    joined, members = [], []
    for run_id in run_ids:
        run = store.get_run(run_id)
        if run.experiment_id == name:
            members.append(run)
        elif run.experiment_id is None and run.source_hash is not None:
            run.experiment_id = name
            run.experiment_cell = collection_cell(run, run.source_hash, _position(store, run))
            joined.append(run)
    return joined, members


def _position(store: Any, run: Run) -> int | None:
    siblings = store.imported_from([run.source_hash]).get(run.source_hash, [])
    return siblings.index(run.id) if len(siblings) > 1 else None


def _check_collection(store: Any, name: str) -> None:
    exp = store.get_experiment(name)
    if exp is not None and not exp.spec.get("collection"):
        raise DuologueError(
            f"'{name}' is an experiment duologue ran (duologue batch), not a collection of imported runs; "
            "give the collection another name"
        )


def _ensure_collection(store: Any, name: str, runs: Iterable[Run]) -> None:
    """The collection's record, created or told of the settings its new runs add (a template)."""
    _check_collection(store, name)
    settings = ["pairing"]
    if any(run.experiment_cell and "template" in run.experiment_cell for run in runs):
        settings.append("template")
    exp = store.get_experiment(name)
    if exp is None:
        store.create_experiment(name, name, collection_record(settings))
    elif not set(settings) <= set(exp.spec.get("settings") or []):
        merged = [s for s in COLLECTION_SETTINGS if s in {*settings, *(exp.spec.get("settings") or [])}]
        store.update_experiment_spec(name, {**exp.spec, "settings": merged})


def collection_record(settings: Sequence[str]) -> dict[str, Any]:
    """What the store keeps for a collection: that it is one, and what its report splits runs by."""
    return {
        "collection": True,
        "description": "runs imported with `duologue import --experiment`",
        "settings": list(settings),
    }


def _analyse(store: Any, runs: list[Run], progress: Progress) -> int:
    """Analyse each new run of a collection with its stored embeddings, as `batch` does when a run ends."""
    from ..analysis.stored import store_analysis

    for k, run in enumerate(runs):
        progress("analysing", k, len(runs))
        store_analysis(store, run)
    progress("analysing", len(runs), len(runs))
    return len(runs)
