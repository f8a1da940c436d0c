"""The native-crash guard (backends/embedded/guard.py): whether llama.cpp's extra buffer types are used, decided
by a probe in child processes, cached per build, CPU and file, and followed by every load path.

The decisions are tested without the CPU that crashes: stand-in children that really die by SIGSEGV, that
print other greedy tokens with extra buffer types, or that are healthy. The real probe runs in the slow test
at the end, on whatever machine runs the suite."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from duologue.backends.embedded import guard

TOKENS = [[1, 2, 3], [4, 5]]
TIMING = {
    "lone_prompt_tps": 400.0,
    "lone_draft_tps": 300.0,
    "lone_decode_tps": 150.0,
    "shard_prompt_tps": 200.0,
    "shard_draft_tps": 150.0,
    "shard_decode_tps": 130.0,
}


def child_script(extra: str, timing: bool) -> str:
    """A stand-in probe child: `extra` says what the child with extra buffer types does (segv: kill itself
    with SIGSEGV; differ: print other tokens; fail: raise; ok: as the child without them)."""
    result = {"tokens": TOKENS, **({"timing": TIMING} if timing else {})}
    other = {"tokens": [[1, 2, 9], [4, 5]], **({"timing": TIMING} if timing else {})}
    return {
        "segv": "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",
        "fail": "raise RuntimeError('cannot create a context')",
        "differ": f"print({json.dumps(json.dumps(other))})",
        "ok": f"print({json.dumps(json.dumps(result))})",
    }[extra]


@pytest.fixture
def probes(tmp_path, monkeypatch):
    """A fresh cache folder, a GGUF-named file to decide on, and stand-in children (counted)."""
    monkeypatch.setenv("DUOLOGUE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(guard.EXTRA_BUFTS_ENV, raising=False)
    monkeypatch.setattr(guard, "build_id", lambda: "0.3.36:build")
    monkeypatch.setattr(guard, "cpu_id", lambda: "cpu")
    monkeypatch.setattr(guard, "system_info", lambda: "AVX512 AMX_INT8 REPACK")
    gguf = tmp_path / "model.Q4_1.gguf"
    gguf.write_bytes(b"GGUF" + bytes(64))
    state = {"extra": "ok", "calls": []}

    def command(path, extra_bufts, timing):
        state["calls"].append((extra_bufts, timing))
        script = child_script(state["extra"] if extra_bufts else "ok", timing)
        return [sys.executable, "-c", script]

    monkeypatch.setattr(guard, "probe_command", command)
    state["gguf"] = gguf
    return state


def quiet(line: str) -> None:
    pass


def test_a_child_killed_by_sigsegv_turns_extra_buffer_types_off(probes):
    probes["extra"] = "segv"
    v = guard.verdict(probes["gguf"], say=quiet)
    assert v.extra_bufts is False and v.weights == "q4_1" and "SIGSEGV" in v.reason
    # The stand-in really died by the signal: what the parent saw of it.
    child = guard.run_child(probes["gguf"], True, False)
    assert child.returncode == -signal.SIGSEGV and child.failure == "was killed by SIGSEGV"


def test_other_greedy_tokens_turn_them_off(probes):
    probes["extra"] = "differ"
    v = guard.verdict(probes["gguf"], say=quiet)
    assert v.extra_bufts is False and "differ" in v.reason


def test_a_failing_child_turns_them_off(probes):
    probes["extra"] = "fail"
    v = guard.verdict(probes["gguf"], say=quiet)
    assert v.extra_bufts is False and "cannot create a context" in v.reason


def test_a_healthy_child_keeps_them_on(probes):
    said: list[str] = []
    v = guard.verdict(probes["gguf"], say=said.append)
    assert v.extra_bufts is True and v.probed
    assert probes["calls"] == [(False, False), (True, False)]  # without them first (the reference), then with
    assert len(said) == 1 and "once per machine" in said[0]  # the probe says what it does, once


def test_the_verdict_is_cached_and_reused(probes):
    probes["extra"] = "segv"
    first = guard.verdict(probes["gguf"], say=quiet)
    assert len(probes["calls"]) == 2
    probes["extra"] = "ok"  # a probe now would say on: the cached verdict is used instead
    again = [guard.verdict(probes["gguf"], say=quiet) for _ in range(3)]
    assert len(probes["calls"]) == 2 and all(v == first for v in again)
    entry = json.loads(guard.cache_file(probes["gguf"].resolve()).read_text())
    assert entry["key"]["weights"] == "q4_1" and entry["key"]["llama_cpp"] == "0.3.36:build"
    assert entry["extra_bufts"] is False and entry["system_info"] == "AVX512 AMX_INT8 REPACK"


def test_timings_are_measured_once_with_the_configuration_used(probes):
    probes["extra"] = "segv"
    v = guard.verdict(probes["gguf"], timing=True, say=quiet)
    # Without (reference), with (killed, timing asked of it), then the timing of the one used: without.
    assert probes["calls"] == [(False, False), (True, True), (False, True)]
    assert v.timing == TIMING
    assert guard.verdict(probes["gguf"], timing=True, say=quiet).timing == TIMING and len(probes["calls"]) == 3


def test_a_healthy_childs_timings_come_with_its_check(probes):
    v = guard.verdict(probes["gguf"], timing=True, say=quiet)
    assert probes["calls"] == [(False, False), (True, True)] and v.timing == TIMING


@pytest.mark.parametrize("damage", ["corrupted", "stale build", "other cpu", "other file", "not a verdict"])
def test_a_corrupted_or_stale_cache_file_is_probed_again(probes, monkeypatch, damage):
    probes["extra"] = "segv"
    assert guard.verdict(probes["gguf"], say=quiet).extra_bufts is False
    file = guard.cache_file(probes["gguf"].resolve())
    entry = json.loads(file.read_text())
    if damage == "corrupted":
        file.write_text(file.read_text()[:40])
    elif damage == "stale build":
        monkeypatch.setattr(guard, "build_id", lambda: "0.3.37:another")
    elif damage == "other cpu":
        monkeypatch.setattr(guard, "cpu_id", lambda: "another cpu")
    elif damage == "other file":
        probes["gguf"].write_bytes(b"GGUF" + bytes(128))  # same name, another size
    else:
        entry["extra_bufts"] = "maybe"
        file.write_text(json.dumps(entry))
    probes["extra"] = "ok"
    assert guard.verdict(probes["gguf"], say=quiet).extra_bufts is True
    assert len(probes["calls"]) == 4  # probed again
    assert json.loads(file.read_text())["extra_bufts"] is True  # and the file rewritten


def test_the_environment_overrides_the_probe(probes, monkeypatch):
    monkeypatch.setenv(guard.EXTRA_BUFTS_ENV, "off")
    v = guard.verdict(probes["gguf"], say=quiet)
    assert v.extra_bufts is False and not v.probed and "DUOLOGUE_EXTRA_BUFTS=off" in v.reason
    monkeypatch.setenv(guard.EXTRA_BUFTS_ENV, "on")
    assert guard.verdict(probes["gguf"], say=quiet).extra_bufts is True
    monkeypatch.setenv(guard.EXTRA_BUFTS_ENV, "sometimes")
    with pytest.raises(guard.BackendError, match="DUOLOGUE_EXTRA_BUFTS=sometimes: use on, off or auto"):
        guard.verdict(probes["gguf"], say=quiet)


def test_turn_seconds_weigh_the_workload():
    t = TIMING
    assert guard.turn_seconds(t, batched=False) == pytest.approx(100 / 400 + 80 / 150)
    assert guard.turn_seconds(t, batched=True) == pytest.approx(100 / 200 + 80 / 130)
    # With lookup a quarter of the tokens come in 16-position steps of which 12 are kept.
    with_lookup = 100 / 400 + 80 * (0.75 / 150 + 0.25 * (16 / 12) / 300)
    assert guard.turn_seconds(t, batched=False, lookup=True) == pytest.approx(with_lookup)


# -- every load path passes what the verdict says --------------------------------------------------------


@pytest.fixture(params=[False, True], ids=["verdict off", "verdict on"])
def decided(request, monkeypatch):
    """The verdict for every file, decided here (no probe): off or on."""
    extra = request.param
    monkeypatch.setattr(guard, "verdict", lambda path, timing=False, say=None: guard.Verdict("f", "q4_1", extra, "t"))
    return extra


def test_the_shared_engine_loads_as_the_verdict_says(embedded_gguf, decided):
    from duologue.backends.embedded.engine import SharedLlamaEngine

    engine = SharedLlamaEngine(embedded_gguf)
    try:
        engine.load()
        assert engine._model is not None and engine._model.params.use_extra_bufts is decided
    finally:
        engine.close()


def test_the_llama_per_participant_engine_loads_as_the_verdict_says(embedded_gguf, decided):
    import llama_cpp.llama_cpp as bindings

    from duologue.backends.embedded.simple import LlamaCppBackend

    default = bindings.llama_model_default_params
    backend = LlamaCppBackend(f"local/{embedded_gguf}")
    llm, _ = backend._load()
    assert llm.model_params.use_extra_bufts is decided  # the parameters Llama built and loaded with
    assert bindings.llama_model_default_params is default  # put back after the load
    llm.close()


def test_the_catalogues_metadata_load_never_uses_them(embedded_gguf, monkeypatch):
    from llama_cpp import _internals

    from duologue.backends.embedded import catalogue

    seen = []
    real = _internals.LlamaModel

    def spy(*, path_model, params, verbose):
        seen.append((params.vocab_only, params.use_extra_bufts))
        return real(path_model=path_model, params=params, verbose=verbose)

    monkeypatch.setattr(_internals, "LlamaModel", spy)
    catalogue.gguf_facts.cache_clear()
    try:
        assert catalogue.gguf_facts(embedded_gguf).file_type == "q4_1"
    finally:
        catalogue.gguf_facts.cache_clear()
    assert seen == [(True, False)]  # the vocabulary only: no weights, no extra buffer types


def test_the_bench_scripts_load_as_the_verdict_says(embedded_gguf, decided, monkeypatch):
    bench = Path(__file__).resolve().parents[2] / "bench"
    monkeypatch.syspath_prepend(str(bench))
    from turn_cost import BareContext

    ctx = BareContext(64, path=embedded_gguf)
    try:
        assert ctx.model.params.use_extra_bufts is decided
    finally:
        ctx.close()
    import llama_cpp

    from duologue.backends.embedded.guard import llama_params

    with llama_params(embedded_gguf):  # what bench/weights.py and bench/embeddings_compare.py load through
        llm = llama_cpp.Llama(str(embedded_gguf), n_ctx=64, verbose=False)
    assert llm.model_params.use_extra_bufts is decided
    llm.close()


# -- a crash the probe did not cover --------------------------------------------------------------------


def test_a_run_killed_by_a_crash_in_llama_cpp_says_what_to_try(tmp_path):
    """A process that segfaults inside the embedded engine leaves its stacks beside the store; `show` and
    `ls` then say in one line what happened and what to try, instead of only "killed"."""
    import subprocess

    db = tmp_path / "runs" / "duologue.db"
    script = f"""
import asyncio, os, signal, sys
from pathlib import Path
from duologue.api import arun_conversation
from duologue.cli.common import run_async
from duologue.spec import ConversationSpec, Participant

def crash(*args, **kwargs):  # stands in for llama_decode dying on a CPU the probe did not cover:
    import ctypes                # a real segfault in the decode thread (a read at address 0)
    ctypes.string_at(0)

import duologue.backends.embedded.decode as decode
decode.DecodeLoop._decode = crash
spec = ConversationSpec(participants=[Participant(name="a", max_tokens=4, weights="q4_1"),
                                      Participant(name="b", max_tokens=4, weights="q4_1")], max_messages=3)
run_async(lambda: arun_conversation(spec, db={str(db)!r}))
"""
    # No probe (the crash is the stand-in's); the crash record goes to this test's cache folder.
    env = {**os.environ, "DUOLOGUE_EXTRA_BUFTS": "off", "DUOLOGUE_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr[-2000:]
    show = subprocess.run(
        [sys.executable, "-m", "duologue", "show", "@last", "--db", str(db)], capture_output=True, text=True, env=env
    )
    assert show.returncode == 0, show.stderr
    note = show.stdout.splitlines()[1]
    assert "crashed inside llama.cpp (Segmentation fault)" in note and "DUOLOGUE_EXTRA_BUFTS=off" in note
    assert "duologue resume" in note
    ls = subprocess.run(
        [sys.executable, "-m", "duologue", "ls", "--db", str(db)], capture_output=True, text=True, env=env
    )
    assert "killed" in ls.stdout and "crashed inside llama.cpp" in ls.stdout


def test_a_process_that_ends_normally_leaves_no_crash_record(tmp_path, monkeypatch):
    import faulthandler

    from duologue.store.crashes import crash_dir, recording_crashes

    monkeypatch.setenv("DUOLOGUE_CACHE_DIR", str(tmp_path))
    before = faulthandler.is_enabled()
    with recording_crashes():
        assert (crash_dir() / f"{os.getpid()}.log").exists() and faulthandler.is_enabled()
    assert not (crash_dir() / f"{os.getpid()}.log").exists()
    assert faulthandler.is_enabled() == before  # whoever had the handler before has it back


# -- the real probe -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_real_probe_decides_here_and_a_conversation_then_runs(embedded_gguf, tmp_path, monkeypatch):
    """On the machine that runs the suite: the probe loads the shipped model with and without extra buffer
    types, decides (on an Intel Xeon with AMX: off, the child dies by SIGSEGV; elsewhere as it finds), and a
    conversation on the shipped file then runs to its end."""
    from duologue.api import arun_conversation
    from duologue.spec import ConversationSpec, Participant

    monkeypatch.setenv("DUOLOGUE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(guard.EXTRA_BUFTS_ENV, raising=False)
    monkeypatch.setenv("DUOLOGUE_WEIGHTS", "q4_1")
    said: list[str] = []
    v = guard.verdict(embedded_gguf, timing=True, say=said.append)
    assert v.probed and v.weights == "q4_1" and said
    assert v.timing is not None and all(v.timing[k] > 0 for k in TIMING)
    if "AMX_INT8" in guard.system_info():  # where llama.cpp's AMX kernels are built and used: known to crash
        assert v.extra_bufts is False, v.reason
    plain = guard.run_child(embedded_gguf, False, timing=False)
    assert plain.failure is None and plain.result is not None and len(plain.result["tokens"]) == 4
    spec = ConversationSpec(
        participants=[Participant(name="a", max_tokens=24, seed=1), Participant(name="b", max_tokens=24, seed=2)],
        max_messages=4,
    )
    run = asyncio.run(arun_conversation(spec, db=tmp_path / "runs.db", watchers=[]))
    assert run.status == "finished" and len(run.messages) == 4
    assert all(m.content.strip() for m in run.messages[1:])
