"""`duologue serve` as a user runs it: the URL it prints answers; bad input is one line and exit 2."""

from __future__ import annotations

import signal
import socket
import urllib.request

import pytest

from helpers import run_cli, start_cli

from .sample import LOOP_RUN


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_serve_prints_a_url_that_answers(sample_db, tmp_path):
    proc = start_cli("serve", "--port", "0", "--db", str(sample_db), cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert line.startswith("duologue viewer: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[2]
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200 and LOOP_RUN in r.read().decode()
        with urllib.request.urlopen(f"{url}runs/{LOOP_RUN}", timeout=30) as r:
            assert "loop onset" in r.read().decode()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_serve_without_a_store_is_one_line(tmp_path):
    proc = run_cli("serve", "--db", str(tmp_path / "nope.db"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == f"duologue: error: no duologue store at {tmp_path / 'nope.db'}\n"
    assert not (tmp_path / "nope.db").exists()


def test_serve_on_a_busy_port_is_one_line(sample_db, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_cli("serve", "--port", str(port), "--db", str(sample_db), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"duologue: error: cannot listen on 127.0.0.1:{port}: ")
    assert proc.stderr.count("\n") == 1
