"""The embedded engine's weights (backends/embedded/weights.py): the Q8_0 copy made once in the cache
folder, reused, rebuilt when missing or corrupted; `auto` (for the shipped model the weights the probe timed
fastest here, alone or batched; a user's own file as it is); the choice in the run's spec."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from duologue.api import arun_conversation
from duologue.backends import lifecycle
from duologue.backends.embedded import weights
from duologue.backends.embedded.pool import EmbeddedPool
from duologue.cli.options import build_spec
from duologue.errors import BackendError
from duologue.folders import CACHE_DIR_ENV
from duologue.spec import Change, ConversationSpec, Participant


def timing(lone_prompt, lone_decode, lone_draft, shard_prompt, shard_decode, shard_draft) -> dict[str, float]:
    return {
        "lone_prompt_tps": lone_prompt,
        "lone_decode_tps": lone_decode,
        "lone_draft_tps": lone_draft,
        "shard_prompt_tps": shard_prompt,
        "shard_decode_tps": shard_decode,
        "shard_draft_tps": shard_draft,
    }


# What the probe measured (tokens/s, rounded): on an Intel Xeon with AMX, extra buffer types off, 2026-12-04
# (`duologue doctor --json`), where Q8_0 serves both, Q4_1 single tokens fastest but without lookup; and a
# machine where BF16's batched steps are fastest (as on the AMD EPYC of bench/weights.py, 2026-11-27).
XEON = {
    "q4_1": timing(380, 112, 300, 200, 120, 170),
    "q8_0": timing(690, 90, 560, 375, 125, 330),
    "bf16": timing(625, 70, 520, 355, 98, 320),
}
AMD = {
    "q4_1": timing(330, 120, 260, 180, 110, 150),
    "q8_0": timing(600, 137, 520, 330, 160, 300),
    "bf16": timing(820, 105, 700, 450, 240, 420),
}


@pytest.mark.parametrize(("measured", "lone", "batched"), [(AMD, "q8_0", "bf16"), (XEON, "q8_0", "q8_0")])
def test_auto_means_the_weights_the_probe_timed_fastest_here(monkeypatch, measured, lone, batched):
    """`auto` for the shipped model: the weight file whose turn the probe's timings make cheapest, alone or
    batched (guard.turn_seconds); a user's own file as it is; DUOLOGUE_WEIGHTS and an explicit choice win."""
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(weights, "_timings", lambda source: measured)
    assert weights.shipped("local/smollm2") and not weights.shipped("local/models/mine.gguf")
    assert weights.resolve("auto", "local/smollm2") == lone
    assert weights.resolve("auto", "local/smollm2", batched=True) == batched
    assert weights.resolve("auto", "local/models/mine.gguf", batched=True) == "q4_1"  # the file unchanged
    assert weights.resolve("q4_1", "local/smollm2") == "q4_1"  # asked for: kept
    monkeypatch.setenv(weights.WEIGHTS_ENV, "bf16")
    assert weights.resolve("q4_1", "local/smollm2") == "bf16"
    monkeypatch.setenv(weights.WEIGHTS_ENV, "q3")
    with pytest.raises(BackendError, match="DUOLOGUE_WEIGHTS=q3"):
        weights.resolve("auto")


def test_a_pool_is_batched_when_it_runs_more_conversations_than_it_has_shards():
    assert [EmbeddedPool(shards=s, conversations=c).batched for s, c in [(1, 1), (2, 2), (2, 3), (1, 2)]] == [
        False,
        False,
        True,
        True,
    ]


def test_the_recorded_weights_and_lookup_are_those_the_engine_runs(monkeypatch):
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(weights, "fastest", lambda source, batched: "q8_0")  # what the probe timed fastest
    monkeypatch.delenv("DUOLOGUE_LOOKUP", raising=False)
    monkeypatch.delenv("DUOLOGUE_EMBEDDED_ENGINE", raising=False)
    common = dict(max_tokens=8, temperature=0)
    spec = ConversationSpec(
        participants=[
            Participant(name="a", model="local/smollm2", **common),
            Participant(name="b", model="local/models/mine-Q8_0.gguf", **common),  # a user's file, run as it is
        ],
        max_messages=4,
    )
    done = lifecycle.prepare(spec)  # the embedded provider's `prepare` hook, as the runner calls it
    # The user's Q8_0 file keeps its lookup default (on, as the engine loading that file decides).
    assert [(p.weights, p.lookup) for p in done.participants] == [("q8_0", True), ("q4_1", True)]
    # A participant whose model a change replaces keeps what it asked for (the new model decides then).
    changed = spec.model_copy(update={"changes": [Change(at=3, participant="a", model="local/models/mine.gguf")]})
    done = lifecycle.prepare(changed)
    assert [(p.weights, p.lookup) for p in done.participants] == [("auto", None), ("q4_1", True)]
    # The first engine loads the shipped file as it is, without lookup: nothing is resolved for it.
    monkeypatch.setenv("DUOLOGUE_EMBEDDED_ENGINE", "llama")
    assert [(p.weights, p.lookup) for p in lifecycle.prepare(spec).participants] == [("auto", None)] * 2


def test_file_types_by_name():
    names = ["m.Q4_1.gguf", "m.Q4_1.98362432.q8_0.gguf", "m.Q4_1.98362432.bf16.gguf", "m.F16.gguf", "m.gguf"]
    assert [weights.file_type(Path(n)) for n in names] == ["q4_1", "q8_0", "bf16", "f16", ""]


def test_the_flags_set_every_participants_weights_and_lookup():
    spec = build_spec(None, {"weights": "q8_0", "lookup": False})
    assert [(p.weights, p.lookup) for p in spec.participants] == [("q8_0", False), ("q8_0", False)]
    assert [(p.weights, p.lookup) for p in build_spec(None, {}).participants] == [("auto", None)] * 2


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    weights._verified.clear()  # what this process already checked: each step below checks anew
    yield tmp_path
    weights._verified.clear()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_q8_0_copy_is_made_once_reused_and_rebuilt(embedded_gguf, cache):
    out = weights.derived(embedded_gguf, "q8_0")
    assert out.parent == cache / "weights" and out.exists()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["sha256"] == weights.sha256(out) and meta["source_sha256"] == weights.sha256(embedded_gguf)
    assert not list(out.parent.glob("*.tmp"))  # written to a temporary file, then renamed
    made = out.stat().st_mtime_ns

    weights._verified.clear()
    # Reused, checked by its hash.
    assert weights.derived(embedded_gguf, "q8_0") == out and out.stat().st_mtime_ns == made

    hashed = []  # a later process: both files unchanged since hashed (size, mtime), so neither is read again
    real_sha256 = weights.sha256
    weights.sha256 = lambda path: hashed.append(path) or real_sha256(path)
    try:
        weights._verified.clear()
        assert weights.derived(embedded_gguf, "q8_0") == out and hashed == []
    finally:
        weights.sha256 = real_sha256

    out.unlink()
    weights._verified.clear()
    assert weights.derived(embedded_gguf, "q8_0").exists()  # missing: made again

    with open(out, "r+b") as f:  # corrupted: the hash no longer matches
        f.seek(4096)
        f.write(b"\0" * 64)
    corrupted = weights.sha256(out)
    weights._verified.clear()
    weights.derived(embedded_gguf, "q8_0")
    assert weights.sha256(out) == json.loads(out.with_suffix(".json").read_text())["sha256"] != corrupted


def spec() -> ConversationSpec:
    common = dict(max_tokens=16, context_length=512, temperature=0)
    return ConversationSpec(
        participants=[Participant(name="a", seed=1, **common), Participant(name="b", seed=2, **common)],
        opener="Say hello.",
        max_messages=3,
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_run_records_the_weights_it_used(embedded_gguf, cache, tmp_path, monkeypatch):
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    monkeypatch.delenv("DUOLOGUE_LOOKUP", raising=False)
    source = weights.resolve_gguf("local/smollm2")
    lone, in_batch = weights.fastest(source, False), weights.fastest(source, True)  # measured here by the probe
    lookup = {"q4_1": False, "q8_0": True, "bf16": True}
    alone = asyncio.run(arun_conversation(spec(), db=tmp_path / "a.db", watchers=[]))
    assert [(p["weights"], p["lookup"]) for p in alone.spec["participants"]] == [(lone, lookup[lone])] * 2
    mine = spec()  # a GGUF of the user's own (here the shipped file by its path): run as it is, never copied
    for p in mine.participants:
        p.model = f"local/{embedded_gguf}"
    theirs = asyncio.run(arun_conversation(mine, db=tmp_path / "b.db", watchers=[]))
    assert [(p["weights"], p["lookup"]) for p in theirs.spec["participants"]] == [("q4_1", False)] * 2
    assert all(m.draft_tokens is None for m in theirs.messages if not m.injected)

    async def among_several():
        async with EmbeddedPool(shards=1) as pool:
            run = await arun_conversation(spec(), db=tmp_path / "c.db", watchers=[])
            return run, [e.path for e in pool.engines]

    run, paths = asyncio.run(among_several())
    assert [(p["weights"], p["lookup"]) for p in run.spec["participants"]] == [(lone, lookup[lone])] * 2
    assert [weights.file_type(p) for p in paths] == [lone]
    generated = [m for m in run.messages if not m.injected]
    drafts = [m.draft_tokens is not None and m.accepted_tokens is not None for m in generated]
    assert generated and drafts == [lookup[lone]] * len(generated)

    async def batched():  # two conversations on one engine: its steps are batches
        async with EmbeddedPool(shards=1, conversations=2) as pool:
            runs = await asyncio.gather(
                *(arun_conversation(spec(), db=tmp_path / f"d{i}.db", watchers=[]) for i in range(2))
            )
            return runs, [e.path for e in pool.engines]

    runs, paths = asyncio.run(batched())
    assert [(p["weights"], p["lookup"]) for r in runs for p in r.spec["participants"]] == [
        (in_batch, lookup[in_batch])
    ] * 4
    assert [weights.file_type(p) for p in paths] == [in_batch]
    assert all(r.status == "finished" and len(r.messages) == 3 for r in runs)


def test_doctor_shows_each_weight_files_lookup_and_the_turn_auto_weighed(monkeypatch):
    """`duologue doctor`: per weight file its lookup default and its turn's seconds alone and batched, the
    same figures `auto` compares (weights.turn_cost), and what `auto` picks from them."""
    from click.testing import CliRunner

    from duologue.backends.embedded import catalogue, guard
    from duologue.cli import cli

    monkeypatch.delenv("DUOLOGUE_LOOKUP", raising=False)
    monkeypatch.setattr(catalogue, "engine_installed", lambda: True)
    monkeypatch.setattr(catalogue, "embedded_model_path", lambda name: Path("smollm2.gguf"))
    monkeypatch.setattr(guard, "build_id", lambda: "0.3.16:abc")
    monkeypatch.setattr(guard, "system_info", lambda: "AVX2 = 1")
    verdicts = {kind: guard.Verdict(f"{kind}.gguf", kind, False, "probed", XEON[kind]) for kind in XEON}
    lone = min(XEON, key=lambda k: weights.turn_cost(k, XEON[k], False))
    batched = min(XEON, key=lambda k: weights.turn_cost(k, XEON[k], True))
    monkeypatch.setattr(weights, "machine_choice", lambda: weights.MachineChoice(verdicts, lone, batched))
    out = CliRunner().invoke(cli, ["doctor", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert {k: v["lookup"] for k, v in got["verdicts"].items()} == {"q4_1": False, "q8_0": True, "bf16": True}
    for kind, v in got["verdicts"].items():
        assert v["lone_turn_seconds"] == pytest.approx(weights.turn_cost(kind, XEON[kind], False))
        assert v["batched_turn_seconds"] == pytest.approx(weights.turn_cost(kind, XEON[kind], True))
    assert got["auto"] == {"lone": "q8_0", "batched": "q8_0"}
    text = CliRunner().invoke(cli, ["doctor", "--width", "200"], catch_exceptions=False).stdout
    (q4,) = [line.split() for line in text.splitlines() if line.split()[:1] == ["q4_1"]]
    seconds = [f"{weights.turn_cost('q4_1', XEON['q4_1'], b):.2f}" for b in (False, True)]
    assert q4[:7] == ["q4_1", "off", "off", seconds[0], "s", seconds[1], "s"]
