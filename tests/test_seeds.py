"""Seeds (issue 25, finding 1): a spec without seeds gets fresh random ones, recorded, from the Python API as
from the CLI; `show` prints the seed each participant used; a seeded spec reproduces."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

import duologue
from duologue.cli import cli
from duologue.conversations import arun_conversation


def stored_seeds(run) -> list[int]:
    return [p["seed"] for p in run.spec["participants"]]


def sampled_seeds(models, name: str) -> list[int]:
    return [r.sampling.seed for r in models.requests_of(name)]


def test_default_spec_sets_no_seed():
    spec = duologue.default_spec()
    assert spec.seed is None and all(p.seed is None for p in spec.participants)


def test_two_gathered_api_runs_of_the_default_spec_get_their_own_seeds(tmp_path, scripted_models):
    spec = duologue.default_spec().model_copy(update={"max_messages": 5})
    db = tmp_path / "d.db"

    async def both():
        return await asyncio.gather(
            arun_conversation(spec, db=db, make_backend=scripted_models.make),
            arun_conversation(spec, db=db, make_backend=scripted_models.make),
        )

    first, second = asyncio.run(both())
    # Each run's seeds are fresh and recorded, one per participant.
    assert None not in stored_seeds(first) and None not in stored_seeds(second)
    assert stored_seeds(first) != stored_seeds(second)
    # ... and what the backends were sampled with derives from them: the two runs sampled differently.
    per_run = [scripted_models.made_for("smollm2-a")[i].requests[0].sampling.seed for i in range(2)]
    assert per_run[0] != per_run[1]
    # A third, plain script run differs again.
    third = duologue.run_conversation(spec, db=db, make_backend=scripted_models.make)
    assert stored_seeds(third) not in (stored_seeds(first), stored_seeds(second))


def test_a_seeded_spec_reproduces_its_sampling(tmp_path, scripted_models):
    spec = duologue.default_spec().model_copy(update={"max_messages": 5, "seed": 42})
    db = tmp_path / "d.db"
    runs = [duologue.run_conversation(spec, db=db, make_backend=scripted_models.make) for _ in range(2)]
    assert stored_seeds(runs[0]) == stored_seeds(runs[1]) == [42, 43]
    a, b = (b.requests for b in scripted_models.made_for("smollm2-a"))
    assert [r.sampling.seed for r in a] == [r.sampling.seed for r in b]


def test_show_prints_the_seed_each_participant_used(tmp_path, scripted_models):
    db = str(tmp_path / "d.db")
    spec = duologue.default_spec().model_copy(update={"max_messages": 3})
    run = duologue.run_conversation(spec, db=db, make_backend=scripted_models.make)
    shown = CliRunner().invoke(cli, ["show", run.id, "--db", db], catch_exceptions=False).stdout
    a, b = stored_seeds(run)
    assert f"smollm2-a: local/smollm2  temperature 0.7  seed {a}" in shown
    assert f"smollm2-b: local/smollm2  temperature 0.7  seed {b}" in shown
    # The spec's base seed is named as such, never as a bare "seed" that reads as the run's only one.
    assert f"base seed {run.spec['seed']}" in shown
    assert not any(line.startswith("seed ") for line in shown.splitlines())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_embedded_default_spec_runs_differ_and_a_seeded_one_repeats(tmp_path):
    """The real model: two gathered default-spec runs say different things; two runs with one seed the same."""
    db = tmp_path / "d.db"

    def spec(**extra):
        base = duologue.default_spec()
        for p in base.participants:
            p.max_tokens = 24
        return base.model_copy(update={"max_messages": 3, "opener": "Hello. What is on your mind?", **extra})

    async def two(s):
        return await asyncio.gather(arun_conversation(s, db=db), arun_conversation(s, db=db))

    def texts(run):
        return [m.content for m in run.messages[1:]]

    free = asyncio.run(two(spec()))
    assert texts(free[0]) != texts(free[1])
    seeded = asyncio.run(two(spec(seed=11)))
    assert texts(seeded[0]) == texts(seeded[1])
