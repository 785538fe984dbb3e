"""Backtest sources: an event-time range of a ``ticks`` topic, or a dataset, into a run's topic.

Topic source (``--source topic``): Kafka can seek by offset, and by *record* timestamp
(``offsets_for_times``), but our records carry their **event time** inside the Avro value.
The mapping from event time to offsets therefore rests on one assumption, stated once:

    **Within a partition, event time is non-decreasing in offset order** (true of every
    replay and of a live feed that publishes in time order; the validation stage
    dead-letters per-symbol time travel, but a partition holds many symbols).

Under it, the first offset with ``ts >= from`` and the first offset with ``ts > to`` are
found by binary search (:func:`find_range`), one record read per probe (confluent-kafka
``assign`` at an offset, one ``consume``); a partition of ``n`` records costs about
``2·log2(n)`` probes. The assumption is checked twice: every probe must agree with it, and
every record of the range copied must lie in ``[from, to]`` in non-decreasing order. When
either check fails the partition falls back to a **linear scan**: every record is read and
those with ``from <= ts <= to`` are kept, in offset order.

The copy keeps raw bytes, keys, headers and partition numbers, so the run's
``<run_id>.ticks`` is exactly the production range. Undecodable records inside a range are
copied as they are (the worker dead-letters them, as it did live); in a linear scan they
cannot be placed in time and are skipped (counted in :attr:`CopyResult.skipped`).

Dataset source: :func:`load_frame` reads a named dataset or a CSV/Parquet file through
:mod:`devtools.datasets`, cut to the range, and :func:`streams.replay.publish` publishes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import structlog

from streams.codec import get_codec
from streams.consumers import reader
from tickcast.config import Settings
from tickcast.errors import DependencyError, SchemaError

log = structlog.get_logger(__name__)

#: ``(offset of the record found, its event time, or None when its value is undecodable)``.
Probe = tuple[int, int | None]


class RecordReader(Protocol):
    """Reads the event time of one record of a partition (the seam tests fake)."""

    def read(self, partition: int, offset: int, high: int) -> Probe | None:
        """The first *decodable* record at or after ``offset`` and before ``high``, or None."""
        ...


@dataclass(frozen=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition to copy; ``linear``: scan and filter instead."""

    partition: int
    start: int
    end: int
    linear: bool = False
    probes: int = 0

    @property
    def size(self) -> int:
        """Offsets in the range (records, when the partition has no gaps)."""
        return max(0, self.end - self.start)


def _first_where(
    reader: RecordReader,
    partition: int,
    low: int,
    high: int,
    satisfied: Callable[[int], bool],
    seen: list[Probe],
) -> int:
    """Smallest ``o`` in ``[low, high]`` whose next decodable record satisfies, or is absent."""
    lo, hi = low, high
    while lo < hi:
        mid = (lo + hi) // 2
        probe = reader.read(partition, mid, high)
        if probe is not None:
            seen.append(probe)
        if probe is None or probe[1] is None or satisfied(probe[1]):
            hi = mid
        else:
            # Everything up to the record found is before the bound (monotonic ts).
            lo = max(mid, probe[0]) + 1
    return min(lo, high)


def monotonic(probes: Sequence[Probe]) -> bool:
    """Whether probes, ordered by offset, have non-decreasing event times.

    >>> monotonic([(5, 20), (1, 10), (9, 20)]), monotonic([(1, 10), (5, 9)])
    (True, False)
    """
    ordered = sorted((offset, ts) for offset, ts in probes if ts is not None)
    times = [ts for _, ts in ordered]
    return all(a <= b for a, b in pairwise(times))


def find_range(
    reader: RecordReader, partition: int, low: int, high: int, from_ms: int, to_ms: int
) -> PartitionRange:
    """Offsets of the records with ``from_ms <= ts <= to_ms`` in ``[low, high)`` (binary search).

    ``low``/``high`` are the partition's earliest and log-end offsets. Pure apart from the
    reader's look-ups; when the probes contradict monotonic event time the answer is the
    whole partition with ``linear=True``.

    >>> class Fake:
    ...     ts = [10, 20, 20, 30, 40]
    ...     def read(self, partition, offset, high):
    ...         return (offset, self.ts[offset]) if offset < min(high, 5) else None
    >>> r = find_range(Fake(), 0, 0, 5, 20, 30)
    >>> (r.start, r.end, r.linear)
    (1, 4, False)
    """
    if from_ms > to_ms or high <= low:
        return PartitionRange(partition, low, low)
    seen: list[Probe] = []
    start = _first_where(reader, partition, low, high, lambda ts: ts >= from_ms, seen)
    end = _first_where(reader, partition, start, high, lambda ts: ts > to_ms, seen)
    if not monotonic(seen):
        return PartitionRange(partition, low, high, linear=True, probes=len(seen))
    return PartitionRange(partition, start, end, probes=len(seen))


# --------------------------------------------------------------------------- Kafka adapter


def _consumer(settings: Settings, **extra: object) -> Any:

    return reader(
        settings,
        f"backtest-reader-{time.monotonic_ns()}",
        **{"enable.auto.offset.store": False, "enable.partition.eof": True, **extra},
    )


def tick_fields(value: bytes | None) -> tuple[str, int, float] | None:
    """``(symbol, event ts, close)`` of a ``Tick`` value, or None when it cannot be decoded."""
    if value is None:
        return None
    try:
        tick = get_codec("Tick").decode(value)
        return str(tick["symbol"]), int(tick["ts"]), float(tick["close"])
    except (SchemaError, KeyError, TypeError, ValueError):
        return None


def event_ts(value: bytes | None) -> int | None:
    """The event time of a ``Tick`` value, or None when it cannot be decoded."""
    fields = tick_fields(value)
    return None if fields is None else fields[1]


class KafkaRecordReader:
    """:class:`RecordReader` over one topic: ``assign`` at the offset, read forward."""

    def __init__(self, settings: Settings, topic: str, timeout_s: float = 10.0) -> None:
        # Small fetches: a probe wants one record, not a megabyte of them.
        self._consumer = _consumer(
            settings, **{"max.partition.fetch.bytes": 65536, "fetch.wait.max.ms": 10}
        )
        self._topic = topic
        self._timeout = timeout_s
        self.probes = 0

    def read(self, partition: int, offset: int, high: int) -> Probe | None:
        """The first decodable record at or after ``offset`` and before ``high``."""
        from confluent_kafka import KafkaError, TopicPartition

        self.probes += 1
        self._consumer.assign([TopicPartition(self._topic, partition, offset)])
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            for msg in self._consumer.consume(64, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return None
                    raise DependencyError("kafka", f"reading {self._topic}: {err}")
                if msg.offset() >= high:
                    return None
                ts = event_ts(msg.value())
                if ts is not None:
                    return (msg.offset(), ts)
        raise DependencyError("kafka", f"no answer reading {self._topic}[{partition}]@{offset}")

    def close(self) -> None:
        """Leave the broker."""
        self._consumer.close()


def watermarks(
    settings: Settings, topic: str, timeout_s: float = 10.0
) -> dict[int, tuple[int, int]]:
    """``partition -> (earliest, log-end)`` offsets of a topic (``{}`` when it does not exist)."""
    from confluent_kafka import TopicPartition

    consumer = _consumer(settings)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            return {}
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            for p in sorted(meta.partitions)
        }
    finally:
        consumer.close()


# --------------------------------------------------------------------------- the copy


@dataclass
class CopyResult:
    """What a topic-range copy did, per partition, and the bars it saw on the way."""

    ranges: list[PartitionRange] = field(default_factory=list)
    copied: int = 0
    skipped: int = 0
    probes: int = 0
    fallbacks: list[int] = field(default_factory=list)
    rows: list[tuple[str, int, float]] = field(default_factory=list)

    def bars(self) -> pd.DataFrame:
        """``symbol, ts_ms, close`` of the copied ticks (the evaluation's bars)."""
        return bars_frame(pd.DataFrame(self.rows, columns=["symbol", "ts_ms", "close"]))


#: ``(key, value, headers, event ts, offset, (symbol, ts, close) or None)``.
Message = tuple[bytes | None, bytes | None, Any, int | None, int, tuple[str, int, float] | None]


def _read_partition(
    settings: Settings, topic: str, partition: int, start: int, end: int
) -> list[Message]:
    """Every record in ``[start, end)`` (see :data:`Message`)."""
    from confluent_kafka import KafkaError, TopicPartition

    if end <= start:
        return []
    consumer = _consumer(settings)
    consumer.assign([TopicPartition(topic, partition, start)])
    out: list[Message] = []
    idle_deadline = time.monotonic() + 30.0
    try:
        while time.monotonic() < idle_deadline:
            batch = consumer.consume(10_000, timeout=0.5)
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return out
                    raise DependencyError("kafka", f"reading {topic}[{partition}]: {err}")
                if msg.offset() >= end:
                    return out
                value = msg.value()
                tick = tick_fields(value)
                ts = None if tick is None else tick[1]
                out.append((msg.key(), value, msg.headers(), ts, msg.offset(), tick))
                if msg.offset() == end - 1:
                    return out
            if batch:
                idle_deadline = time.monotonic() + 30.0
    finally:
        consumer.close()
    raise DependencyError("kafka", f"{topic}[{partition}] stopped before offset {end}")


def in_order_within(messages: Sequence[Message], from_ms: int, to_ms: int) -> bool:
    """Whether every decodable record is within ``[from, to]`` in non-decreasing event time."""
    last = from_ms
    for _, _, _, ts, _, _ in messages:
        if ts is None:
            continue
        if ts < last or ts > to_ms:
            return False
        last = ts
    return True


def copy_range(
    settings: Settings,
    source_topic: str,
    target_topic: str,
    from_ms: int,
    to_ms: int,
    on_progress: Callable[[int], None] | None = None,
    keep: Callable[[str], bool] | None = None,
) -> CopyResult:
    """Copy the ticks with ``from_ms <= ts <= to_ms`` of ``source_topic`` into ``target_topic``.

    Same raw bytes, keys, headers and partition numbers; one partition at a time (its
    records are held in memory between read and produce). ``keep(symbol)`` drops symbols.
    """
    from streams.producer import BatchProducer

    marks = watermarks(settings, source_topic)
    if not marks:
        raise DependencyError("kafka", f"source topic {source_topic} does not exist")
    reader = KafkaRecordReader(settings, source_topic)
    producer = BatchProducer(settings)
    result = CopyResult()
    try:
        for partition, (low, high) in marks.items():
            span = find_range(reader, partition, low, high, from_ms, to_ms)
            messages = _read_partition(settings, source_topic, partition, span.start, span.end)
            if not span.linear and not in_order_within(messages, from_ms, to_ms):
                span = PartitionRange(partition, low, high, linear=True, probes=span.probes)
                messages = _read_partition(settings, source_topic, partition, low, high)
            if span.linear:
                result.fallbacks.append(partition)
                log.warning("backtest.linear_scan", topic=source_topic, partition=partition)
                kept = [m for m in messages if m[3] is not None and from_ms <= m[3] <= to_ms]
                result.skipped += sum(1 for m in messages if m[3] is None)
                messages = kept
            result.ranges.append(span)
            result.probes += span.probes
            for key, value, headers, _, _, tick in messages:
                if keep is not None and tick is not None and not keep(tick[0]):
                    continue
                producer.produce(target_topic, key, value or b"", headers, partition=partition)
                result.copied += 1
                if tick is not None:
                    result.rows.append(tick)
                if result.copied % 5000 == 0:
                    producer.poll()
                    if on_progress:
                        on_progress(5000)
            producer.flush()
    finally:
        reader.close()
    if on_progress:
        on_progress(result.copied % 5000)
    return result


# --------------------------------------------------------------------------- dataset source


def bars_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``symbol, ts_ms, close`` for the evaluation: a trade's price is its close; one per stamp."""
    close = frame["close"] if "close" in frame.columns else frame["price"]
    bars = pd.DataFrame(
        {
            "symbol": frame["symbol"].astype(str).to_numpy(),
            "ts_ms": frame["ts_ms"].astype("int64").to_numpy(),
            "close": close.astype(float).to_numpy(),
        }
    )
    bars = bars.drop_duplicates(["symbol", "ts_ms"], keep="last")
    return bars.sort_values(["ts_ms", "symbol"], kind="stable").reset_index(drop=True)


def first_symbols(symbols: Sequence[str], n: int | None) -> set[str] | None:
    """The first ``n`` symbols in sorted order (``None``: all)."""
    return None if n is None else set(sorted(set(symbols))[:n])


def load_frame(
    source: str,
    from_ms: int | None = None,
    to_ms: int | None = None,
    symbols: int | None = None,
    cache_dir: Path | None = None,
) -> pd.DataFrame:
    """A named dataset or a CSV/Parquet file of bars, cut to ``[from, to]`` and ``symbols``.

    A file has the canonical bar columns (``symbol, ts_ms, open, high, low, close, volume``);
    ``ts_ms`` is ISO-8601 text (naive = UTC) or a number of epoch milliseconds.
    """
    from devtools import datasets
    from streams.files import ColumnMap, load_user_file

    if source in datasets.DATASETS:
        frame = datasets.load(source, cache_dir)
    elif Path(source).exists():
        try:  # text timestamps (ISO-8601) ...
            frame = load_user_file(source, kind="bars")
        except SchemaError as exc:  # ... or numbers, read as epoch milliseconds
            if exc.reason != "bad_column_map":
                raise
            frame = load_user_file(source, "bars", ColumnMap(ts_unit="ms"))
    else:
        known = ", ".join(sorted(datasets.DATASETS))
        raise SchemaError(
            "unknown_source", f"{source!r} is neither 'topic', a dataset ({known}) nor a file"
        )
    if from_ms is not None:
        frame = frame[frame["ts_ms"] >= from_ms]
    if to_ms is not None:
        frame = frame[frame["ts_ms"] <= to_ms]
    chosen = first_symbols(frame["symbol"].tolist(), symbols)
    if chosen is not None:
        frame = frame[frame["symbol"].isin(chosen)]
    return frame.reset_index(drop=True)


def source_label(source: str) -> str:
    """The ``source`` field of published ticks: stable across runs, so ids are identical."""
    return f"backtest:{Path(source).name}"
