"""The store is a plain SQLite file: Datasette serves it read-only (immutable), search included."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from duologue.store import Store
from faultproxy import free_port
from helpers import make_run

pytestmark = pytest.mark.slow  # starts a server


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture
def datasette(tmp_path):
    db = tmp_path / "duologue.db"
    with Store(db) as store:
        store.create_run(make_run("r1", ["we talk of rivers", "now resting, silent"]))
        store.create_run(make_run("r2", ["silent resting", "the sea"], minutes=1))
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "datasette",
            "serve",
            "--immutable",
            str(db),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/duologue"
    try:
        for _ in range(300):
            try:
                get_json(base + ".json")
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode() if proc.stdout else "datasette exited") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # immutable: nothing written


def test_datasette_lists_the_tables_and_runs_sql(datasette):
    tables = {t["name"] for t in get_json(datasette + ".json")["tables"]}
    assert {"runs", "messages", "events", "experiments", "message_vectors", "messages_fts"} <= tables
    sql = "select run_id, idx from messages_fts where messages_fts match 'resting silent' order by run_id, idx"
    rows = get_json(datasette + ".json?" + urllib.parse.urlencode({"sql": sql, "_shape": "array"}))
    assert [(r["run_id"], r["idx"]) for r in rows] == [("r1", 2), ("r2", 1)]
    runs = get_json(datasette + "/runs.json?_shape=array&_sort=id")
    assert [r["id"] for r in runs] == ["r1", "r2"] and runs[0]["message_count"] == 2


def test_datasette_refuses_writes(datasette):
    sql = "insert into runs (id) values ('x')"
    with pytest.raises(urllib.error.HTTPError) as err:
        get_json(datasette + ".json?" + urllib.parse.urlencode({"sql": sql}))
    assert err.value.code == 400
