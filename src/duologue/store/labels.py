"""Labels of the messages by a labeller other than the built-in analysis (migration 011).

The built-in analysis keeps its end-state label per message in `messages.theme`;
`duologue judge` asks a model for the same labels (judge.py) and keeps them here,
one row per run, message and labeller (the judge's model string), so both can be
compared (analysis/agreement.py). A row whose `label` is NULL says "none"; a
message without a row was not labelled by that labeller.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ..records import utcnow


@dataclass(frozen=True)
class Labelling:
    """One labeller's pass over one run: the theme set it was given and what it cost."""

    run_id: str
    labeller: str
    themes: str  # "built-in" or the theme file's path
    labelled_at: str
    labelled: int  # messages with a label from it
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Labels:
    """The Store's part that keeps other labellers' labels (mixed into Store)."""

    conn: sqlite3.Connection
    _write: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def save_labels(
        self,
        run_id: str,
        labeller: str,
        labels: Mapping[int, str | None],
        *,
        themes: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        """Keep `labels` ({message index: theme id, None for none}) by `labeller`, replacing its earlier
        labels of those messages, and add the tokens to what labelling the run has cost; one transaction."""
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO message_labels (run_id, idx, labeller, label) "
                "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM messages WHERE run_id=? AND idx=?)",
                [(run_id, idx, labeller, label, run_id, idx) for idx, label in sorted(labels.items())],
            )
            conn.execute(
                """INSERT INTO run_labellers (run_id, labeller, themes, labelled_at, prompt_tokens, completion_tokens)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (run_id, labeller) DO UPDATE SET
                       themes = excluded.themes,
                       labelled_at = excluded.labelled_at,
                       prompt_tokens = COALESCE(run_labellers.prompt_tokens, 0) + excluded.prompt_tokens,
                       completion_tokens = COALESCE(run_labellers.completion_tokens, 0) + excluded.completion_tokens""",
                (run_id, labeller, themes, utcnow().isoformat(), prompt_tokens, completion_tokens),
            )

    def message_labels(self, run_id: str, labeller: str) -> dict[int, str | None]:
        """{message index: theme id or None} of the messages `labeller` labelled in the run."""
        rows = self.conn.execute(
            "SELECT idx, label FROM message_labels WHERE run_id=? AND labeller=? ORDER BY idx", (run_id, labeller)
        )
        return {idx: label for idx, label in rows}

    def labellings(self, run_ids: Iterable[str]) -> list[Labelling]:
        """Every labeller's pass over these runs (besides the built-in analysis), by run and labeller."""
        out: list[Labelling] = []
        for chunk in _chunks(list(dict.fromkeys(run_ids))):
            rows = self.conn.execute(
                f"""SELECT l.run_id, l.labeller, l.themes, l.labelled_at,
                           (SELECT COUNT(*) FROM message_labels m
                            WHERE m.run_id = l.run_id AND m.labeller = l.labeller),
                           l.prompt_tokens, l.completion_tokens
                    FROM run_labellers l WHERE l.run_id IN ({", ".join("?" * len(chunk))})""",
                chunk,
            )
            out += [Labelling(*tuple(r)) for r in rows]
        return sorted(out, key=lambda x: (x.run_id, x.labeller))

    def experiment_labels(self, experiment_id: str, labeller: str) -> dict[str, dict[int, str | None]]:
        """{run id: {message index: label}} of `labeller`'s labels over an experiment's runs."""
        rows = self.conn.execute(
            """SELECT l.run_id, l.idx, l.label FROM message_labels l JOIN runs r ON r.id = l.run_id
               WHERE r.experiment_id=? AND l.labeller=? ORDER BY l.run_id, l.idx""",
            (experiment_id, labeller),
        )
        out: dict[str, dict[int, str | None]] = {}
        for run_id, idx, label in rows:
            out.setdefault(run_id, {})[idx] = label
        return out


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:  # SQLite's limit on bound parameters
    for start in range(0, len(items), size):
        yield items[start : start + size]
