"""Offsets after a restore, against a brute-force reference that re-numbers the records."""

from __future__ import annotations

import random

import pytest

from agents.feature_engine import SymbolStream
from recovery.rebase import new_last, new_position, rebase_state
from streams.validation import SymbolGuard


def renumbered(held: list[int]) -> dict[int, int]:
    """The reference: the i-th held record gets offset i on the empty broker."""
    return {old: new for new, old in enumerate(sorted(held))}


def reference_position(held: list[int], committed: int) -> int:
    """Where a group that committed ``committed`` resumes: the first held record it has not
    read, or the end when it has read them all."""
    mapping = renumbered(held)
    unread = [mapping[o] for o in held if o >= committed]
    return min(unread, default=len(held))


def reference_last(held: list[int], last: int) -> int:
    """The new offset of the last applied record: the last held record at or before it."""
    mapping = renumbered(held)
    applied = [mapping[o] for o in held if o <= last]
    return max(applied, default=-1)


@pytest.mark.parametrize("seed", range(30))
def test_offsets_move_like_the_renumbered_records(seed: int) -> None:
    rng = random.Random(seed)
    start = rng.randrange(0, 1000)
    held = sorted(rng.sample(range(start, start + 200), rng.randrange(0, 60)))  # with gaps
    for probe in range(start - 5, start + 210):
        assert new_position(held, probe) == reference_position(held, probe)
        assert new_last(held, probe) == reference_last(held, probe)


def test_a_snapshot_points_into_the_restored_topic() -> None:
    state = SymbolStream(guard=SymbolGuard(), features=None, partition=2, last_offset=141)
    held = {2: [140, 141, 142], 3: [7]}
    moved = SymbolStream.loads(rebase_state(state.dumps(), held))
    assert (moved.partition, moved.last_offset) == (2, 1)
    older = SymbolStream(guard=SymbolGuard(), features=None, partition=2, last_offset=100)
    assert SymbolStream.loads(rebase_state(older.dumps(), held)).last_offset == -1
    never = SymbolStream(guard=SymbolGuard(), features=None)
    assert SymbolStream.loads(rebase_state(never.dumps(), held)).last_offset == -1
    elsewhere = SymbolStream(guard=SymbolGuard(), features=None, partition=0, last_offset=9)
    assert SymbolStream.loads(rebase_state(elsewhere.dumps(), held)).last_offset == -1
