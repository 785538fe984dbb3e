"""Records a batch left unprocessed, kept in memory for the next turns (the sector sync).

With ``TICKCAST_SIDE_SECTOR_SYNC`` the engine processes a batch's records only while their
sector columns are final and reports where it stopped per partition
(:attr:`FeatureEngine.held <agents.feature_engine.FeatureEngine.held>`). The direct runner
keeps the records from there on in a :class:`HeldRecords` buffer and hands them back
first in the next turn, instead of seeking back and fetching and decoding them again (a
40x slowdown measured on an uneven replay, ``docs/side_streams.md``).

The buffer never touches the commit rule: a held record is not *handled*, so the stage
commits no offset at or past it (agents.feature_stage ``checkpoint``); a crash re-reads
it from the committed offset. It is bounded: a partition holding ``limit`` records is
paused (the consumer then fetches the partitions the others wait for) and resumed once it
holds fewer (:meth:`HeldRecords.over`). A revoked partition's records are dropped
(:meth:`HeldRecords.drop`): its next owner reads them from the committed offset.

>>> from streams.raw_record import RawRecord
>>> records = [RawRecord("t", p, o, None, b"") for p, o in ((0, 5), (1, 7), (0, 6), (1, 8))]
>>> held = HeldRecords(limit=2)
>>> held.keep(records, {0: 6, 1: 7})  # partition 0 from offset 6, partition 1 from 7
>>> [(r.partition, r.offset) for r in held.with_new([RawRecord("t", 0, 7, None, b"")])]
[(1, 7), (1, 8), (0, 6), (0, 7)]
>>> held.over(), len(held)
({1}, 3)
>>> held.drop([1]); held.over(), len(held)
(set(), 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from streams.raw_record import RawRecord

__all__ = ["HeldRecords"]


class HeldRecords:
    """Per partition, the records from the engine's ``held`` offset on, in offset order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.partitions: dict[int, list[RawRecord]] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self.partitions.values())

    def with_new(self, records: list[RawRecord]) -> list[RawRecord]:
        """The held records (each partition's in offset order), then ``records``: the
        consumer's position is past the held ones, so each partition stays in order."""
        if not self.partitions:
            return records
        out = [r for queue in self.partitions.values() for r in queue]
        out.extend(records)
        return out

    def keep(self, records: Sequence[RawRecord], held: Mapping[int, int]) -> None:
        """After a turn over ``records``: keep those at or past ``held[partition]``."""
        kept: dict[int, list[RawRecord]] = {}
        if held:
            for record in records:
                start = held.get(record.partition)
                if start is not None and record.offset >= start:
                    kept.setdefault(record.partition, []).append(record)
        self.partitions = kept

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget the records of ``partitions`` (revoked: re-read from the committed offset)."""
        for partition in partitions:
            self.partitions.pop(partition, None)

    def over(self) -> set[int]:
        """Partitions holding ``limit`` records or more (to pause until they hold fewer)."""
        return {p for p, queue in self.partitions.items() if len(queue) >= self.limit}
