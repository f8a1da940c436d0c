"""Full-text search over every stored message (SQLite FTS5, kept by triggers; migration 007).

`search_messages` takes what a user types: words (all must appear, in any order),
"quoted phrases" (those words in that order; a quote left open runs to the end) and `word*`
prefixes. Nothing of it
reaches FTS5's own query syntax unquoted, so no input is a syntax error; `raw=True`
passes an FTS5 query (AND, OR, NOT, NEAR, column filters) as it is.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import DuologueError

# Marks around the matched words in a snippet; chosen to be unlikely in model output.
MARK_START = "\x02"
MARK_END = "\x03"
SNIPPET_TOKENS = 24


@dataclass(frozen=True)
class SearchHit:
    run_id: str
    run_title: str
    started_at: datetime | None
    index: int
    speaker: str
    snippet: str  # the matched words between MARK_START and MARK_END

    def plain_snippet(self, start: str = "", end: str = "") -> str:
        return self.snippet.replace(MARK_START, start).replace(MARK_END, end)


@dataclass(frozen=True)
class SearchResult:
    query: str  # as FTS5 received it
    hits: list[SearchHit]
    total: int  # matching messages in all, of which `hits` are the best
    runs: int  # distinct runs among all matches


_TERMS = re.compile(r'"([^"]*)"?|([^\s"]+)')


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def fts_query(text: str) -> str:
    """What a user typed, as an FTS5 query in which every term is quoted."""
    terms = []
    for phrase, word in _TERMS.findall(text):
        if phrase.strip():  # "quoted words" (a quote left open runs to the end)
            terms.append(_quote(" ".join(phrase.split())))
        elif word.endswith("*") and word.rstrip("*"):
            terms.append(_quote(word.rstrip("*")) + "*")
        elif word.strip("*"):
            terms.append(_quote(word))
    if not terms:
        raise DuologueError("search: nothing to search for")
    return " ".join(terms)


class MessageSearch:
    """The Store's text search (a part of Store; see store/core.py)."""

    conn: sqlite3.Connection

    def search_messages(
        self,
        text: str,
        *,
        raw: bool = False,
        run_id: str | None = None,
        experiment_id: str | None = None,
        speaker: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> SearchResult:
        """Messages matching `text`, best first (bm25), with a snippet each."""
        query = text.strip() if raw else fts_query(text)
        if not query:
            raise DuologueError("search: nothing to search for")
        where = ["messages_fts MATCH ?"]
        args: list[Any] = [query]
        if run_id:
            where.append("m.run_id = ?")
            args.append(run_id)
        if experiment_id:
            where.append("r.experiment_id = ?")
            args.append(experiment_id)
        if speaker:
            where.append("m.speaker = ?")
            args.append(speaker)
        joins = (
            "FROM messages_fts JOIN messages m ON m.run_id = messages_fts.run_id AND m.idx = messages_fts.idx "
            "JOIN runs r ON r.id = m.run_id"
        )
        clause = " AND ".join(where)
        try:
            rows = self.conn.execute(
                f"""SELECT m.run_id, r.title, r.started_at, m.idx, m.speaker,
                           snippet(messages_fts, 0, ?, ?, '…', ?) AS snip
                    {joins} WHERE {clause}
                    ORDER BY bm25(messages_fts), r.started_at DESC, m.idx LIMIT ? OFFSET ?""",
                [MARK_START, MARK_END, SNIPPET_TOKENS, *args, limit, offset],
            ).fetchall()
            total, runs = self.conn.execute(
                f"SELECT COUNT(*), COUNT(DISTINCT m.run_id) {joins} WHERE {clause}", args
            ).fetchone()
        except sqlite3.OperationalError as err:
            if "fts5" in str(err) or "syntax" in str(err) or "no such column" in str(err):
                raise DuologueError(f"search: not a valid query {text!r} ({err})") from None
            raise
        hits = [
            SearchHit(
                r["run_id"],
                r["title"],
                datetime.fromisoformat(r["started_at"]) if r["started_at"] else None,
                r["idx"],
                r["speaker"],
                r["snip"],
            )
            for r in rows
        ]
        return SearchResult(query, hits, total, runs)
