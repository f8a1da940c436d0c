"""How many threads an embedded engine's next step uses (runner.LlamaThread.threads_for): no model needed."""

from __future__ import annotations

from dataclasses import dataclass

from duologue.backends.embedded.runner import LlamaThread


@dataclass
class Shard:
    """What threads_for reads of a sibling shard: how many participants it has leased."""

    leased: int


def runner(free: int) -> LlamaThread:
    thread = LlamaThread(private=True)  # its thread starts only when an engine is added
    thread.free_cores = lambda: free  # type: ignore[method-assign]  # as if other programs left `free` cores
    return thread


def test_a_fixed_count_stays_while_its_siblings_have_participants():
    assert runner(2).threads_for(1, [Shard(leased=2)]) == 1
    assert runner(2).threads_for(3) == 3  # a participant's own thread count, no siblings


def test_an_engine_without_a_count_takes_the_cores_other_programs_leave():
    assert runner(2).threads_for(None) == 2
    assert runner(1).threads_for(None) == 1


def test_a_shard_borrows_the_cores_of_siblings_with_no_participants_as_far_as_they_are_free():
    assert runner(2).threads_for(1, [Shard(leased=0)]) == 2
    assert runner(4).threads_for(1, [Shard(leased=0), Shard(leased=0), Shard(leased=3)]) == 3
    assert runner(1).threads_for(1, [Shard(leased=0)]) == 1  # another program uses that core: not borrowed
    assert runner(3).threads_for(1, [Shard(leased=0), Shard(leased=0), Shard(leased=0)]) == 3  # capped by free
