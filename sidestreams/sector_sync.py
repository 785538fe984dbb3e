"""Sector columns equal on every worker: a broadcast board of bar returns and its watermark.

:class:`~sidestreams.sector.SectorBoard` answers from the bars its worker has processed, so
with several partitions (or workers) a peer that is behind, or owned by another worker, is
missing from the mean. The rule that makes live equal training on any number of partitions
and workers (``docs/side_streams.md``, "Sector columns on several partitions"):

* every worker publishes each accepted bar's one-bar log return ``(symbol, ts, ret)`` to a
  broadcast topic partitioned like ``ticks``, and reads **all** its partitions into a
  :class:`BroadcastBoard`: returns kept by bar time, so arrival order (and a duplicate
  re-published after a restart) changes nothing;
* :class:`PartitionWatermark`: the sector columns of a bar at ``t`` are **final** once every
  active partition has a return at or after ``t`` (each partition is in event-time order, so
  all returns before ``t`` have then arrived); the board's answer then equals the training
  frame's exactly (the means are exactly rounded sums, :func:`math.fsum`, in symbol order).

The price is latency: a bar waits for the slowest partition to reach its time.

>>> board = BroadcastBoard({"A": "tech", "B": "tech"})
>>> board.add("B", 2, 0.02); board.add("A", 2, 0.04); board.add("A", 3, 0.01)
True
True
True
>>> [round(x, 4) for x in board.features("A", 3)]  # bars strictly before t=3
[0.03, 0.03, 0.01, 0.01]
>>> mark = PartitionWatermark()
>>> mark.observe(0, 3); mark.final(3, active=[0, 1])
False
>>> mark.observe(1, 5); mark.final(3, active=[0, 1]), mark.value([0, 1])
(True, 3)
"""

from __future__ import annotations

import heapq
import math
import struct
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sidestreams.sector import UNKNOWN

__all__ = [
    "BroadcastBoard",
    "PartitionWatermark",
    "ReturnHistory",
    "plan_batch",
    "read_return",
    "record_time",
]

_DOUBLE = struct.Struct("<d")
_NO_SOURCE = b"\x00\x00\x00\x00"
"""The four optional fields after a FeatureVector's values, all null (a return's)."""


@dataclass(slots=True)
class ReturnHistory:
    """One symbol's bar returns by bar time (the newest ``max_records``)."""

    max_records: int = 4096
    ts: list[int] = field(default_factory=list)
    ret: list[float] = field(default_factory=list)

    def add(self, ts: int, ret: float) -> bool:
        """Keep the return of the bar at ``ts``; ``False`` if that bar was known already."""
        i = bisect_left(self.ts, ts)
        if i < len(self.ts) and self.ts[i] == ts:
            return False
        self.ts.insert(i, ts)
        self.ret.insert(i, ret)
        if len(self.ts) > self.max_records:
            del self.ts[0], self.ret[0]
        return True

    def before(self, ts: int) -> float | None:
        """The return of the latest bar strictly before ``ts``."""
        i = bisect_left(self.ts, ts)
        return self.ret[i - 1] if i else None


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


@dataclass(slots=True)
class BroadcastBoard:
    """Every symbol's bar returns, whoever computed them; answers like ``SectorBoard``."""

    sectors: Mapping[str, str]
    max_records: int = 4096
    symbols: dict[str, ReturnHistory] = field(default_factory=dict)
    _at: int | None = None
    _means: tuple[dict[str, float], float] = ({}, math.nan)

    def add(self, symbol: str, ts: int, ret: float) -> bool:
        """Take one published return (any order, duplicates ignored); whether it was new."""
        history = self.symbols.get(symbol)
        if history is None:
            history = self.symbols[symbol] = ReturnHistory(self.max_records)
        new = history.add(ts, ret)
        if new and self._at is not None and ts < self._at:
            self._at = None  # the cached means at _at no longer hold
        return new

    def _means_at(self, ts: int) -> tuple[dict[str, float], float]:
        """Sector and market means at ``ts``, computed once per time (O(symbols))."""
        if self._at != ts:
            groups: dict[str, list[float]] = {}
            market: list[float] = []
            for sym in sorted(self.symbols):  # the training board's order
                r = self.symbols[sym].before(ts)
                if r is None:
                    continue
                market.append(r)
                groups.setdefault(self.sectors.get(sym, UNKNOWN), []).append(r)
            self._means = ({k: _mean(v) for k, v in groups.items()}, _mean(market))
            self._at = ts
        return self._means

    def features(self, symbol: str, ts: int) -> list[float]:
        """``sector_ret, market_ret, rel_sector_ret, rel_market_ret`` of ``symbol`` at ``ts``."""
        sectors, market_ret = self._means_at(ts)
        sector_ret = sectors.get(self.sectors.get(symbol, UNKNOWN), math.nan)
        own_history = self.symbols.get(symbol)
        own = own_history.before(ts) if own_history is not None else None
        own_ret = math.nan if own is None else own
        return [sector_ret, market_ret, own_ret - sector_ret, own_ret - market_ret]


@dataclass(slots=True)
class PartitionWatermark:
    """Per partition of the returns topic, the latest bar time seen."""

    latest: dict[int, int] = field(default_factory=dict)

    def observe(self, partition: int, ts: int) -> None:
        """A return of a bar at ``ts`` arrived on ``partition``."""
        if ts > self.latest.get(partition, -1):
            self.latest[partition] = ts

    def value(self, active: Iterable[int]) -> int | None:
        """The smallest latest time over ``active`` partitions (``None``: one has none yet)."""
        times = [self.latest.get(p) for p in active]
        if not times or any(t is None for t in times):
            return None
        return min(t for t in times if t is not None)

    def final(self, ts: int, active: Iterable[int]) -> bool:
        """Whether every return of a bar before ``ts`` on ``active`` partitions has arrived."""
        mark = self.value(active)
        return mark is not None and mark >= ts


def plan_batch(
    items: Sequence[tuple[int, int, int | None]],
    positions: Mapping[int, int],
    active: Iterable[int],
) -> tuple[list[int], dict[int, int]]:
    """Which records of a batch to process now, in which order, and where to resume.

    ``items`` are the batch's ``(partition, offset, event time or None)`` in consume order
    (each partition's offsets ascending; ``None``: undecodable, processed in its place).
    Records are taken in event-time order across partitions (each partition's own order
    kept) while a record at ``t`` is final: every ``active`` partition either still has a
    record of this batch at or after ``t`` waiting, or its position (``positions``: the
    latest time of which everything before is processed, published or seen) is ``>= t``.
    The first record that is not final stops the batch: the result is the indices to
    process, in order, and per partition the first offset left for a later batch.

    >>> items = [(0, 10, 5), (0, 11, 9), (1, 20, 6)]
    >>> plan_batch(items, {}, active=[0, 1])  # partition 1 ends at 6: 9 is not final
    ([0, 2], {0: 11})
    >>> plan_batch(items, {1: 9}, active=[0, 1])
    ([0, 2, 1], {})
    """
    queues: dict[int, list[tuple[int, int]]] = {}
    for index, (partition, _, ts) in enumerate(items):
        queue = queues.setdefault(partition, [])
        last = queue[-1][0] if queue else -(1 << 62)
        queue.append((last if ts is None else max(ts, last), index))
    heads = dict.fromkeys(queues, 0)
    heap = [(q[0][0], p) for p, q in queues.items()]
    heapq.heapify(heap)
    local = dict(positions)
    active = list(active)
    order: list[int] = []
    while heap:
        ts, partition = heap[0]
        blocked = any(
            heads.get(p, 0) >= len(queues.get(p, ())) and local.get(p, -(1 << 62)) < ts
            for p in active
            if p != partition
        )
        if blocked:
            break
        heapq.heappop(heap)
        queue = queues[partition]
        order.append(queue[heads[partition]][1])
        local[partition] = max(local.get(partition, ts), ts)
        heads[partition] += 1
        if heads[partition] < len(queue):
            heapq.heappush(heap, (queue[heads[partition]][0], partition))
    held = {p: items[queues[p][heads[p]][1]][1] for p in queues if heads[p] < len(queues[p])}
    return order, held


# --- the wire: two hot reads of the framed Avro records (streams.codec) --------------------
def _long(buf: bytes, pos: int) -> tuple[int, int]:
    """Zig-zag varint at ``pos``: (value, next position); ``IndexError`` when truncated."""
    z = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    n, pos = _long(buf, pos)
    if n < 0 or pos + n > len(buf):
        raise ValueError("string past the end")
    return buf[pos : pos + n].decode(), pos + n


def record_time(payload: bytes | None, header: bytes) -> int | None:
    """The ``ts`` of a framed record of a schema that starts ``symbol: string, ts: long``
    (Tick, FeatureVector) written with ``header`` (magic + fingerprint); ``None`` for
    anything else (the caller decodes it in full). Reads two fields, not thirty.

    >>> from streams.codec import AvroCodec
    >>> codec = AvroCodec("feature_vector")
    >>> record_time(codec.encode({"symbol": "AAPL", "ts": 1_700_000_000_123,
    ...     "feature_set_version": "v", "values": []}), codec.header)
    1700000000123
    """
    if payload is None or payload[: len(header)] != header:
        return None
    try:
        _, pos = _string(payload, len(header))
        return _long(payload, pos)[0]
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


def read_return(payload: bytes, header: bytes) -> tuple[str, int, str, list[float]] | None:
    """``(symbol, ts, kind, values)`` of a ``sector-returns`` record as this module's
    workers write it (a FeatureVector of at most one value, its source fields null);
    ``None`` for anything else, which the caller hands to the Avro codec (same answer,
    slower).

    >>> from streams.codec import AvroCodec
    >>> codec = AvroCodec("feature_vector")
    >>> read_return(codec.encode({"symbol": "AAPL", "ts": 60_000,
    ...     "feature_set_version": "bar-return", "values": [0.25]}), codec.header)
    ('AAPL', 60000, 'bar-return', [0.25])
    """
    if payload[: len(header)] != header:
        return None
    try:
        symbol, pos = _string(payload, len(header))
        ts, pos = _long(payload, pos)
        kind, pos = _string(payload, pos)
        count, pos = _long(payload, pos)
        values: list[float] = []
        if count == 1:
            values.append(_DOUBLE.unpack_from(payload, pos)[0])
            count, pos = _long(payload, pos + 8)
        if count != 0 or payload[pos:] != _NO_SOURCE:
            return None
    except (IndexError, ValueError, UnicodeDecodeError, struct.error):
        return None
    return symbol, ts, kind, values
