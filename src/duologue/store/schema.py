"""The store's schema: an ordered list of named migrations, each applied once, each in one transaction.

A migration is a function of the connection that runs its statements with
`conn.execute` (never `executescript`, which commits on its own and would let a
kill -9 leave a migration half applied). `apply_migrations` wraps each one,
together with the row that records it, in a single `BEGIN IMMEDIATE`
transaction: a store is at the schema before a migration or after it, never in
between.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Execute the statements of `script` one by one, inside whatever transaction is open."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):  # a trigger's body holds `;` of its own
            if statement.strip(" \n\t;"):
                conn.execute(statement)
            statement = ""
    if statement.strip(" \n\t;"):
        raise ValueError(f"incomplete SQL statement in a migration: {statement.strip()[:60]}")


def _m001_initial(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE experiments (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            spec TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            participants TEXT NOT NULL,
            models TEXT NOT NULL,
            spec TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            status TEXT NOT NULL,
            stop_reason TEXT,
            stop_detail TEXT,
            duologue_version TEXT,
            parent_run_id TEXT REFERENCES runs(id),
            fork_at INTEGER,
            experiment_id TEXT REFERENCES experiments(id),
            source TEXT,
            pid INTEGER,
            analysis TEXT
        );
        CREATE INDEX runs_started ON runs(started_at);
        CREATE INDEX runs_experiment ON runs(experiment_id);
        CREATE TABLE messages (
            run_id TEXT NOT NULL REFERENCES runs(id),
            idx INTEGER NOT NULL,
            speaker TEXT NOT NULL,
            model TEXT,
            content TEXT NOT NULL,
            reasoning TEXT,
            started_at TEXT,
            ended_at TEXT,
            ttft REAL,
            latency REAL,
            prompt_tokens INTEGER,
            cached_tokens INTEGER,
            completion_tokens INTEGER,
            finish_reason TEXT,
            attempts INTEGER NOT NULL DEFAULT 1,
            injected INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, idx)
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL REFERENCES runs(id),
            message_index INTEGER,
            kind TEXT NOT NULL,
            detail TEXT,
            data TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX events_run ON events(run_id);
        """,
    )


def _m002_experiment_cells(conn: sqlite3.Connection) -> None:
    # One run per cell of an experiment's matrix: the unique index is what makes
    # a re-run of a batch (after a kill -9, say) unable to duplicate a conversation.
    run_script(
        conn,
        """
        ALTER TABLE runs ADD COLUMN experiment_cell TEXT;
        CREATE UNIQUE INDEX runs_experiment_cell ON runs(experiment_id, experiment_cell)
            WHERE experiment_cell IS NOT NULL;
        """,
    )


def _m003_run_summary(conn: sqlite3.Connection) -> None:
    # What the viewer's runs table shows and sorts by, kept on the run itself so a
    # page of tens of thousands of runs counts no messages and parses no analyses.
    # (Its trigger over the analysis JSON is dropped again by _m005_typed_loop_columns.)
    run_script(
        conn,
        """
        ALTER TABLE runs ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE runs ADD COLUMN loop_period INTEGER;
        ALTER TABLE runs ADD COLUMN loop_onset INTEGER;
        UPDATE runs SET
            message_count = (SELECT COUNT(*) FROM messages m WHERE m.run_id = runs.id),
            loop_period = json_extract(analysis, '$.exact_loop.period'),
            loop_onset = json_extract(analysis, '$.exact_loop.onset_message');
        CREATE INDEX runs_message_count ON runs(message_count);
        CREATE INDEX runs_loop_period ON runs(loop_period);
        CREATE INDEX runs_loop_onset ON runs(loop_onset);
        CREATE INDEX runs_stop_reason ON runs(stop_reason);
        CREATE TRIGGER runs_count_message AFTER INSERT ON messages BEGIN
            UPDATE runs SET message_count = message_count + 1 WHERE id = NEW.run_id;
        END;
        CREATE TRIGGER runs_uncount_message AFTER DELETE ON messages BEGIN
            UPDATE runs SET message_count = message_count - 1 WHERE id = OLD.run_id;
        END;
        CREATE TRIGGER runs_loop_from_analysis AFTER UPDATE OF analysis ON runs BEGIN
            UPDATE runs SET
                loop_period = json_extract(NEW.analysis, '$.exact_loop.period'),
                loop_onset = json_extract(NEW.analysis, '$.exact_loop.onset_message')
            WHERE id = NEW.id;
        END;
        """,
    )


def _m004_fork_lineage(conn: sqlite3.Connection) -> None:
    # `show` lists the forks of a run; without an index that is a scan of every run.
    conn.execute("CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent_run_id) WHERE parent_run_id IS NOT NULL")


def _m005_typed_loop_columns(conn: sqlite3.Connection) -> None:
    # The loop columns are written by Store.save_analysis from the typed analysis, in the
    # same transaction as the analysis itself; no trigger reads field paths of its JSON any
    # more. The JSON stored by earlier versions is read here once, to fill the new columns.
    run_script(
        conn,
        """
        DROP TRIGGER IF EXISTS runs_loop_from_analysis;
        ALTER TABLE runs ADD COLUMN loop_first_repeat INTEGER;
        ALTER TABLE runs ADD COLUMN loop_last INTEGER;
        ALTER TABLE runs ADD COLUMN loop_kind TEXT;
        ALTER TABLE runs ADD COLUMN loop_absorbing INTEGER;
        ALTER TABLE runs ADD COLUMN loop_detail TEXT;
        ALTER TABLE runs ADD COLUMN near_loop_onset INTEGER;
        ALTER TABLE runs ADD COLUMN near_loop_lag INTEGER;
        UPDATE runs SET
            loop_period = json_extract(analysis, '$.exact_loop.period'),
            loop_onset = json_extract(analysis, '$.exact_loop.onset_message'),
            loop_first_repeat = json_extract(analysis, '$.exact_loop.first_repeat_message'),
            loop_last = json_extract(analysis, '$.exact_loop.last_message'),
            loop_kind = json_extract(analysis, '$.exact_loop.kind'),
            loop_absorbing = json_extract(analysis, '$.exact_loop.absorbing'),
            loop_detail = json_extract(analysis, '$.exact_loop.detail'),
            near_loop_onset = json_extract(analysis, '$.near_loop.onset_message'),
            near_loop_lag = json_extract(analysis, '$.near_loop.dominant_lag')
        WHERE analysis IS NOT NULL;
        """,
    )


def _m006_semantic(conn: sqlite3.Connection) -> None:
    # What the semantic analysis finds, written by Store.save_analysis from the typed analysis:
    # per run its end state, attractor and convergence; per message its theme and topic labels;
    # and each message's embedding, computed once (by the live run or the first analysis) and
    # kept per embedder, so a report over many runs embeds nothing again.
    run_script(
        conn,
        """
        ALTER TABLE runs ADD COLUMN end_state TEXT;
        ALTER TABLE runs ADD COLUMN attractor TEXT;
        ALTER TABLE runs ADD COLUMN attractor_onset INTEGER;
        ALTER TABLE runs ADD COLUMN convergence_onset INTEGER;
        ALTER TABLE runs ADD COLUMN convergence_strength REAL;
        ALTER TABLE messages ADD COLUMN theme TEXT;
        ALTER TABLE messages ADD COLUMN topic TEXT;
        CREATE TABLE message_vectors (
            run_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            embedder TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (run_id, idx, embedder),
            FOREIGN KEY (run_id, idx) REFERENCES messages(run_id, idx) ON DELETE CASCADE
        );
        CREATE INDEX runs_attractor ON runs(attractor) WHERE attractor IS NOT NULL;
        """,
    )


def _m007_message_search(conn: sqlite3.Connection) -> None:
    # Full-text search over message text (`duologue search`, the viewer's runs page): an FTS5
    # index holding its own copy of each message's text with the message's key beside it.
    # (Not an external-content index over messages' rowid: VACUUM may renumber the rowids of
    # a table without an INTEGER PRIMARY KEY, and the index would point at the wrong messages.)
    # Triggers keep it in step; it is filled from the messages already stored.
    run_script(
        conn,
        """
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            content, run_id UNINDEXED, idx UNINDEXED, tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(content, run_id, idx) VALUES (NEW.content, NEW.run_id, NEW.idx);
        END;
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            DELETE FROM messages_fts WHERE run_id = OLD.run_id AND idx = OLD.idx;
        END;
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
            UPDATE messages_fts SET content = NEW.content WHERE run_id = OLD.run_id AND idx = OLD.idx;
        END;
        INSERT INTO messages_fts(content, run_id, idx) SELECT content, run_id, idx FROM messages;
        """,
    )


def _m008_lookup_tokens(conn: sqlite3.Connection) -> None:
    # Lookup decoding (the embedded engine): per message, the tokens drafted from the history and
    # those the model's own samples confirmed. NULL where the message was not decoded with it.
    run_script(
        conn,
        """
        ALTER TABLE messages ADD COLUMN draft_tokens INTEGER;
        ALTER TABLE messages ADD COLUMN accepted_tokens INTEGER;
        """,
    )


def _m009_source_hash(conn: sqlite3.Connection) -> None:
    # An imported run remembers the SHA-256 of the file it came from: importing the same file (or a
    # folder holding it) again finds its runs here instead of storing them twice.
    run_script(
        conn,
        """
        ALTER TABLE runs ADD COLUMN source_hash TEXT;
        CREATE INDEX runs_source_hash ON runs(source_hash) WHERE source_hash IS NOT NULL;
        """,
    )


def _m010_costs(conn: sqlite3.Connection) -> None:
    # What each generated message cost (USD; NULL: unknown or not recorded), where the figure comes from or
    # why it is unknown (cost_source), and the tokens written to a provider's cache. Per run: the price
    # data's version, and the sum of its own generated messages' known costs with the count of unknown
    # ones, kept by triggers as message_count is (a fork's kept messages were its parent's spending), so
    # `ls` and the viewer's runs page add nothing up. Runs stored before: every generated message unknown.
    run_script(
        conn,
        """
        ALTER TABLE messages ADD COLUMN cache_write_tokens INTEGER;
        ALTER TABLE messages ADD COLUMN cost REAL;
        ALTER TABLE messages ADD COLUMN cost_source TEXT;
        ALTER TABLE runs ADD COLUMN price_data TEXT;
        ALTER TABLE runs ADD COLUMN cost REAL NOT NULL DEFAULT 0;
        ALTER TABLE runs ADD COLUMN cost_unknown INTEGER NOT NULL DEFAULT 0;
        UPDATE runs SET cost_unknown = (
            SELECT COUNT(*) FROM messages m
            WHERE m.run_id = runs.id AND m.injected = 0 AND m.idx > COALESCE(runs.fork_at, 0)
        );
        CREATE TRIGGER runs_cost_message AFTER INSERT ON messages WHEN NEW.injected = 0 BEGIN
            UPDATE runs SET cost = cost + COALESCE(NEW.cost, 0), cost_unknown = cost_unknown + (NEW.cost IS NULL)
            WHERE id = NEW.run_id AND NEW.idx > COALESCE(fork_at, 0);
        END;
        CREATE TRIGGER runs_uncost_message AFTER DELETE ON messages WHEN OLD.injected = 0 BEGIN
            UPDATE runs SET cost = cost - COALESCE(OLD.cost, 0), cost_unknown = cost_unknown - (OLD.cost IS NULL)
            WHERE id = OLD.run_id AND OLD.idx > COALESCE(fork_at, 0);
        END;
        """,
    )


def _m011_message_labels(conn: sqlite3.Connection) -> None:
    # A second labeller of the messages' end-state themes beside the built-in analysis (messages.theme):
    # `duologue judge` asks a model. One row per run, message and labeller; `label` NULL: labelled "none".
    # A message the labeller has no row for was not labelled (yet). `run_labellers` keeps, per run and
    # labeller, the theme set it was given and what it cost.
    run_script(
        conn,
        """
        CREATE TABLE message_labels (
            run_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            labeller TEXT NOT NULL,
            label TEXT,
            PRIMARY KEY (run_id, idx, labeller),
            FOREIGN KEY (run_id, idx) REFERENCES messages(run_id, idx) ON DELETE CASCADE
        );
        CREATE TABLE run_labellers (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            labeller TEXT NOT NULL,
            themes TEXT NOT NULL,
            labelled_at TEXT NOT NULL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            PRIMARY KEY (run_id, labeller)
        );
        """,
    )


# Ordered; append new migrations, never edit or reorder applied ones.
MIGRATIONS: list[Migration] = [
    _m001_initial,
    _m002_experiment_cells,
    _m003_run_summary,
    _m004_fork_lineage,
    _m005_typed_loop_columns,
    _m006_semantic,
    _m007_message_search,
    _m008_lookup_tokens,
    _m009_source_hash,
    _m010_costs,
    _m011_message_labels,
]


def migration_name(fn: Migration) -> str:
    return fn.__name__.lstrip("_")


def apply_migrations(conn: sqlite3.Connection, migrations: list[Migration] | None = None) -> None:
    """Apply the migrations this store has not had yet, each with its record in one transaction."""
    migrations = MIGRATIONS if migrations is None else migrations
    with conn:
        conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
    for fn in migrations:
        name = migration_name(fn)
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")  # DDL included: sqlite3 opens no transaction for it by itself
        try:
            # Another process may have applied it while this one waited for the lock.
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone() is None:
                fn(conn)
                conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, datetime('now'))", (name,))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
