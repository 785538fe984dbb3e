"""Offsets after a restore: pure functions from the backed-up offsets to the new ones.

A topic restored into an empty broker starts again at offset 0: the records of a partition
that the backup holds (offsets ``o_0 < o_1 < …``) get offsets ``0, 1, …`` in that order.
Everything that names an old offset is moved the same way:

- a committed offset ``c`` (the next record to read) becomes the number of backed-up records
  before it, so a group reads exactly the records it had not read;
- the worker's per-symbol state remembers the last tick it applied (``last_offset``); it
  becomes the new offset of that tick, or -1 when the tick is older than the backed-up tail
  (the state covers everything restored before it), so a replayed tick is skipped exactly
  when it was skipped before.

>>> held = [40, 41, 42, 45]
>>> new_position(held, 42), new_position(held, 46), new_position(held, 10)
(2, 4, 0)
>>> new_last(held, 41), new_last(held, 39), new_last(held, 45)
(1, -1, 3)
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence

from agents.feature_engine import SymbolStream


def new_position(held: Sequence[int], committed: int) -> int:
    """The restored committed offset: how many held records come before ``committed``."""
    return bisect_left(held, committed)


def new_last(held: Sequence[int], last: int) -> int:
    """The restored offset of the last record applied, -1 when it is older than ``held``."""
    return bisect_right(held, last) - 1


def rebase_state(payload: bytes, held: Mapping[int, Sequence[int]]) -> bytes:
    """A worker snapshot whose ``last_offset`` points into the restored ticks topic.

    ``held`` maps each ticks partition to the sorted offsets the backup holds of it.
    """
    state = SymbolStream.loads(payload)
    if state.last_offset >= 0:
        state.last_offset = new_last(held.get(state.partition, ()), state.last_offset)
    return state.dumps()
