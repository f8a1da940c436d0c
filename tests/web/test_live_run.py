"""Follow a real conversation in the browser: `duologue run` on the embedded model writes the store in
another process while the page shows each message as it is stored."""

from __future__ import annotations

import sqlite3
import time

import pytest
from playwright.sync_api import expect

from duologue.store import Store
from helpers import start_cli

from .conftest import running_viewer, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def wait_for_run(db, proc, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        conn = sqlite3.connect(db)
        try:
            row = conn.execute("SELECT id FROM runs").fetchone()
        except sqlite3.OperationalError:  # the run's process is still creating the schema
            row = None
        finally:
            conn.close()
        if row:
            return row[0]
        time.sleep(0.05)
    raise AssertionError("the run never appeared in the store")


def test_follow_a_run_while_it_is_generated(page, tmp_path):
    db = tmp_path / "runs" / "duologue.db"
    Store(db).close()
    with running_viewer(db) as url:
        proc = start_cli(
            "run",
            "--max-messages",
            "12",
            "--max-tokens",
            "24",
            "--context-length",
            "1024",
            "--on-loop",
            "continue",
            "--quiet",
            "--db",
            str(db),
            cwd=tmp_path,
        )
        try:
            run_id = wait_for_run(db, proc)
            page.goto(f"{url}/runs/{run_id}")
            expect(page.locator("#status")).to_have_text("● live")
            page.evaluate("window.__sameDocument = true")  # gone if the page reloads
            shown = page.locator("#chat .msg").count()
            # A message stored by the other process appears without navigating.
            wait_until(
                lambda: page.locator("#chat .msg").count() > max(shown, 1), timeout=300, what="a message to arrive"
            )
            assert page.evaluate("window.__sameDocument") is True
            indices = [int(i) for i in page.locator("#chat .msg").evaluate_all("ms => ms.map(m => m.dataset.index)")]
            assert indices == list(range(1, len(indices) + 1))

            # When the run ends the page reloads into its final form.
            expect(page.locator("#status")).to_have_text("finished", timeout=300_000)
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

        with Store(db) as store:
            stored = [m.content for m in store.get_messages(run_id)]
        assert len(stored) == 12
        expect(page.locator("#message-count")).to_have_text("12")
        assert page.locator("#chat .msg > .raw").all_text_contents() == stored
