"""The worker's side inputs: the ``macro`` and ``news`` topics as as-of tables.

The side tables are materialised views of their topics, like a Kafka Streams GlobalKTable:

* ``macro`` (one partition, compacted) is read whole by every worker, from the beginning,
  before the first batch;
* ``news`` is keyed and partitioned like ``ticks``: a worker reads the news partitions with
  the numbers of the ticks partitions it owns, from the beginning of retention, whenever its
  assignment changes (its news tables are rebuilt then).

They are rebuilt rather than checkpointed because the as-of answer depends only on the
records and the tick's event time, not on when a record arrived (a *late* record, one that
arrives after a tick it could have served, is applied from then on and counted). The sector
board is different: it is derived from the ticks, so each symbol's returns travel in its
state snapshot (``SymbolStream.extra["sector"]``) with the indicators.

Before each batch :meth:`SideInputs.poll` takes whatever side records have arrived; every
record is counted in ``tickcast_side_records_total{topic, outcome}``.

**Sector columns on several partitions** (:class:`SectorSync`, ``TICKCAST_SIDE_SECTOR_SYNC``,
on by default; the direct runner only): every worker publishes its accepted bars' returns
and, per ticks partition it processed, a watermark (the time before which that partition is
done) to ``sector-returns`` (partitioned like ``ticks``), and reads all of it into a
:class:`~sidestreams.sector_sync.BroadcastBoard`. A batch's records are taken in event-time
order while their sector columns are final (:func:`~sidestreams.sector_sync.plan_batch`);
the engine reports where it stopped (:attr:`FeatureEngine.held`) and the direct runner keeps
the rest in memory for the next turns (agents.held_records: bounded, never committed, a
full partition paused). A partition whose position has not risen for
``TICKCAST_SIDE_SECTOR_IDLE_S`` stops holding the others (rows then processed count as
``outcome="not_final"`` under ``topic="sector-returns"``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from agents.feature_engine import BatchOutput, FeatureEngine, StateLoader
from indicators.feature_set import FeatureSet
from schemas.records import MacroObservation, NewsItem
from sidestreams.features import SideFeatureSet, SideSpec, SideState
from sidestreams.sector import SymbolReturns
from sidestreams.sector_sync import (
    BroadcastBoard,
    PartitionWatermark,
    plan_batch,
    read_return,
    record_time,
)
from streams.codec import AvroCodec
from streams.consumers import reader
from streams.feature_encoder import FeatureVectorEncoder
from streams.producer import BatchProducer
from streams.raw_record import RawRecord
from streams.validation import ValidationRules
from tickcast.config import Settings
from tickcast.errors import DependencyError, SchemaError
from tickcast.metrics import Metrics

log = structlog.get_logger(__name__)

MACRO, NEWS, RETURNS = "macro", "news", "sector-returns"
_DRAIN = 10_000
_RETURN, _MARK = "bar-return", "watermark"
"""``feature_set_version`` of a ``sector-returns`` record: a bar's return, or a watermark."""


class SectorSync:
    """This worker's side of the broadcast sector board (see the module docstring)."""

    def __init__(self, settings: Settings, spec: SideSpec, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.board = BroadcastBoard(spec.sectors or {}, spec.max_records)
        self.mark = PartitionWatermark()
        self.topic = settings.topic(RETURNS)
        self.ticks = settings.topic("ticks")
        self.codec = AvroCodec("feature_vector")
        self.encoder = FeatureVectorEncoder()  # byte-identical to the codec, faster
        self.producer: BatchProducer | None = None
        self.own: dict[tuple[str, int], float] = {}
        """Returns of this batch's bars, published after it."""
        self.advanced: dict[int, float] = {}
        self.nonempty: set[int] = set()
        self.sent: dict[int, int] = {}
        """Per partition, the latest watermark this worker published."""
        self.opened = self.checked = 0.0

    def seen(self, partition: int) -> None:
        """``partition`` of ``ticks`` holds records (this worker read some, or a worker
        published its returns or watermark): wait for it, ``side_sector_idle_s`` at most
        from now if it does not advance."""
        if partition not in self.nonempty:
            self.nonempty.add(partition)
            self.advanced.setdefault(partition, time.monotonic())

    def observe(self, partition: int, ts: int) -> None:
        """``partition`` is done before ``ts`` (its position rose: it is not idle)."""
        if ts > self.mark.latest.get(partition, -1):
            self.mark.observe(partition, ts)
            self.advanced[partition] = time.monotonic()

    def take(self, partition: int, value: bytes | None) -> None:
        """Apply one ``sector-returns`` record (a return, or a watermark)."""
        try:
            if value is None:
                raise SchemaError("UNDECODABLE", "empty (tombstone) payload")
            fast = read_return(value, self.codec.header)  # the codec's answer, faster
            if fast is None:
                record = self.codec.decode(value)
                fast = (record["symbol"], record["ts"], record["feature_set_version"],
                        record["values"])  # fmt: skip
            symbol, ts, kind, values = fast
            if kind == _RETURN and len(values) == 1 and math.isfinite(values[0]):
                self.board.add(symbol, ts, values[0])
            elif kind != _MARK:
                raise SchemaError("UNKNOWN_KIND", f"not a return or a watermark: {kind!r}")
            self.seen(partition)
            self.observe(partition, ts)
            outcome = "applied"
        except SchemaError as exc:
            log.warning("side record refused", topic=RETURNS, error=str(exc)[:300])
            outcome = "refused"
        self.metrics.side_records.labels(topic=RETURNS, outcome=outcome).inc()

    def active(self, consumer: Consumer) -> list[int]:
        """Ticks partitions that hold records and whose position rose within the idle time."""
        now = time.monotonic()
        if now - self.checked > 10.0:
            self.checked = now
            meta = consumer.list_topics(self.ticks, timeout=10).topics[self.ticks].partitions
            for p in meta:
                low, high = consumer.get_watermark_offsets(TopicPartition(self.ticks, p), 10)
                if high > low:
                    self.seen(p)
        idle = self.settings.side_sector_idle_s
        return sorted(p for p in self.nonempty if now - self.advanced.get(p, self.opened) <= idle)

    def publish(self, out: BatchOutput, done: dict[int, int]) -> None:
        """Publish the batch's returns, then each processed partition's watermark."""
        assert self.producer is not None
        produce, encode = self.producer.produce, self.encoder.encode
        produced = False
        for row in out.features:
            ret = self.own.pop((row["symbol"], row["ts"]), None)
            partition = row.get("source_partition")
            if ret is not None and partition is not None:
                record = {"symbol": row["symbol"], "ts": row["ts"],
                          "feature_set_version": _RETURN, "values": [ret]}  # fmt: skip
                produce(self.topic, row["symbol"].encode(), encode(record), partition=partition)
                produced = True
        self.own.clear()
        sent = self.sent
        for partition, ts in done.items():
            if ts <= sent.get(partition, -1):
                continue  # already said: nothing new to tell the other workers
            mark = {"symbol": "", "ts": ts, "feature_set_version": _MARK, "values": []}
            produce(self.topic, None, encode(mark), partition=partition)
            sent[partition] = ts
            self.observe(partition, ts)
            produced = True
        if produced:
            self.producer.flush()


class SideInputs:
    """The side tables of one worker and the consumers that fill them."""

    def __init__(self, settings: Settings, spec: SideSpec, metrics: Metrics) -> None:
        self.settings = settings
        self.spec = spec
        self.metrics = metrics
        self.state = SideState(spec)
        self.topics = {MACRO: settings.topic(MACRO), NEWS: settings.topic(NEWS),
                       RETURNS: settings.topic(RETURNS)}  # fmt: skip
        self.codecs = {MACRO: AvroCodec("macro_observation"), NEWS: AvroCodec("news_item")}
        self.owned: frozenset[int] | None = None
        self.macro: Consumer | None = None
        self.news: Consumer | None = None
        self.returns: Consumer | None = None
        self.meta: Consumer | None = None
        """Asks the broker for offsets and metadata (never assigned, never fetching)."""
        self.sync = (
            SectorSync(settings, spec, metrics)
            if spec.sectors is not None and settings.side_sector_sync
            else None
        )
        """The broadcast sector board (``None``: each worker's own board, exact on one
        partition only)."""

    # --- records ----------------------------------------------------------------------------
    def apply(self, kind: str, key: bytes | None, value: bytes | None) -> str:
        """Apply one side record; returns its outcome (applied, late, ignored, refused)."""
        try:
            if value is None:
                raise SchemaError("UNDECODABLE", "empty (tombstone) payload")
            record = self.codecs[kind].decode(value)
            if kind == MACRO:
                late = self.state.add_macro(MacroObservation(**record))  # type: ignore[typeddict-item]
                outcome = "ignored" if late is None else "late" if late else "applied"
            else:
                symbol = key.decode() if key else ""
                if symbol not in record["symbols"]:
                    raise SchemaError("KEY_MISMATCH", f"key {symbol!r} not in {record['symbols']}")
                late = self.state.add_news(NewsItem(**record), symbol)  # type: ignore[typeddict-item]
                outcome = "late" if late else "applied"
        except (SchemaError, ValueError, UnicodeDecodeError) as exc:
            log.warning("side record refused", topic=kind, error=str(exc)[:300])
            outcome = "refused"
        self.metrics.side_records.labels(topic=kind, outcome=outcome).inc()
        return outcome

    def extend(self, symbol: str, ts: int, close: float, extra: dict[str, Any]) -> list[float]:
        """The side columns of ``symbol``'s bar at ``ts``; its sector returns live in
        ``extra`` (the symbol's checkpointed state)."""
        board = self.state.board
        if board is not None and symbol not in board.symbols:
            saved = extra.get("sector")
            if isinstance(saved, SymbolReturns):
                board.adopt(symbol, saved)
        values = self.state.update(symbol, ts, close)
        if board is not None:
            mine = extra["sector"] = board.symbols[symbol]
            if self.sync is not None and self.returns is not None:  # the broadcast answer
                values[-4:] = self.sync.board.features(symbol, ts)
                if mine.ret_ts == ts:
                    self.sync.board.add(symbol, ts, mine.ret)
                    self.sync.own[(symbol, ts)] = mine.ret
        return values

    # --- consumers --------------------------------------------------------------------------
    def open(self) -> None:
        """Read ``macro`` to its end (every worker holds all of it)."""
        group = f"{self.settings.consumer_group}-side"
        # Offsets and metadata from a consumer that never fetches: a reader with assigned
        # partitions keeps a long-poll fetch in flight, and a request queued behind it on
        # the connection waits for it (0.5 s per call measured).
        self.meta = reader(self.settings, group)
        self.macro = reader(self.settings, group)
        self.news = reader(self.settings, group)
        self._catch_up(MACRO, self.macro, [0])
        if self.sync is not None:
            self.sync.producer = BatchProducer(self.settings)
            self.returns = reader(self.settings, group)
            topic = self.topics[RETURNS]
            meta = self.meta.list_topics(topic, timeout=10).topics[topic].partitions
            self._catch_up(RETURNS, self.returns, sorted(meta))
            self.sync.opened = time.monotonic()

    def close(self) -> None:
        """Close the consumers (worker shutdown); a later batch would open them again."""
        closed = 0
        for consumer in (self.macro, self.news, self.returns, self.meta):
            if consumer is not None:
                consumer.close()
                closed += 1
        self.macro = self.news = self.returns = self.meta = None
        if self.sync is not None and self.sync.producer is not None:
            self.sync.producer.flush(timeout=10.0)
            self.sync.producer = None
        self.owned = None
        if closed:
            log.info("side consumers closed", consumers=closed)

    def poll(self, owned: Iterable[int]) -> None:
        """Take the side records that arrived; rebuild the news tables if ``owned`` changed."""
        if self.macro is None or self.news is None:
            return
        partitions = frozenset(owned)
        if partitions != self.owned:
            self.owned = partitions
            self.state.news.clear()
            self._catch_up(NEWS, self.news, sorted(partitions))
        for kind, consumer in ((MACRO, self.macro), (NEWS, self.news)):
            for message in consumer.consume(_DRAIN, timeout=0):
                if message.error() is None:
                    self.apply(kind, message.key(), message.value())
        if self.sync is not None and self.returns is not None:
            for message in self.returns.consume(_DRAIN, timeout=0):
                partition = message.partition()
                if message.error() is None and partition is not None:
                    self.sync.take(partition, message.value())

    def _catch_up(
        self, kind: str, consumer: Consumer, partitions: list[int], timeout_s: float = 60.0
    ) -> None:
        """Assign ``partitions`` of ``kind`` from the beginning and apply them to their end."""
        topic, meta = self.topics[kind], self.meta or consumer
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        ends = {}
        for p in partitions:
            low, high = meta.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        deadline = time.monotonic() + timeout_s
        applied = 0
        while ends:
            if time.monotonic() > deadline:
                raise DependencyError("kafka", f"catching up {topic} timed out at {ends}")
            for message in consumer.consume(_DRAIN, timeout=0.5):
                partition, offset = message.partition(), message.offset()
                if message.error() is not None or partition is None or offset is None:
                    continue
                if kind == RETURNS and self.sync is not None:
                    self.sync.take(partition, message.value())
                else:
                    self.apply(kind, message.key(), message.value())
                applied += 1
                if offset + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
        log.info("side topic caught up", topic=topic, partitions=partitions, records=applied)


class SideFeatureEngine(FeatureEngine):
    """The feature engine with the side columns: side records are taken before each batch."""

    def __init__(
        self,
        feature_set: FeatureSet,
        side: SideInputs,
        rules: ValidationRules | None = None,
        owned: Callable[[], Iterable[int]] = frozenset,
    ) -> None:
        super().__init__(SideFeatureSet(feature_set, side.spec), rules, side=side)
        self.side_inputs = side
        self.owned = owned
        """The ticks partitions this worker owns (set by the worker to the stage's)."""
        self.times: dict[tuple[int, int], int | None] = {}
        """Event times of the records the last batch held, by (partition, offset)."""
        self.tick_header = AvroCodec("tick").header
        self.planned: tuple[tuple[int, ...], tuple[tuple[int, int], ...]] = ((), ())
        """Active partitions and watermarks the last plan saw (unchanged: same answer)."""

    def process(self, records: Sequence[RawRecord], load: StateLoader, now_ms: int) -> BatchOutput:
        """Take the side records that arrived (opening the consumers at first), then run."""
        inputs = self.side_inputs
        if inputs.macro is None:
            inputs.open()
        inputs.poll(self.owned())
        sync = inputs.sync
        if sync is None or inputs.returns is None:
            return super().process(records, load, now_ms)
        assert inputs.meta is not None
        for partition in {r.partition for r in records} - sync.nonempty:
            sync.seen(partition)
        active = sync.active(inputs.meta)
        times, known = {}, self.times  # event times of held records: decoded once
        planned = (tuple(active), tuple(sorted(sync.mark.latest.items())))
        if planned == self.planned and all((r.partition, r.offset) in known for r in records):
            return BatchOutput()  # the records held last turn, nothing advanced: held again
        self.planned = planned
        items = []
        for r in records:
            at = (r.partition, r.offset)
            ts = known[at] if at in known else self._event_time(r)
            times[at] = ts
            items.append((r.partition, r.offset, ts))
        order, self.held = plan_batch(items, sync.mark.latest, active)
        self.times = {
            at: ts for at, ts in times.items() if at[1] >= self.held.get(at[0], at[1] + 1)
        }
        out = super().process([records[i] for i in order], load, now_ms)
        done: dict[int, int] = {}  # per processed partition, the time before which it is done
        for i in order:
            partition, _, ts = items[i]
            if ts is not None and ts > done.get(partition, -1):
                done[partition] = ts
        for partition, offset in self.held.items():
            head = times[(partition, offset)]
            if head is not None:  # everything of the partition before it is done
                done[partition] = max(done.get(partition, -1), head)
        if len(active) < len(sync.nonempty) and out.features:
            self.metrics_not_final(len(out.features))
        sync.publish(out, done)
        return out

    def _event_time(self, record: RawRecord) -> int | None:
        """The tick's event time (``None``: undecodable; the engine dead-letters it)."""
        if record.value is None:
            return None
        ts = record_time(record.value, self.tick_header)  # two fields, not the whole tick
        if ts is not None:
            return ts
        try:
            return int(self.codec.decode(record.value)["ts"])
        except (SchemaError, ValueError):
            return None

    def metrics_not_final(self, rows: int) -> None:
        """Rows whose sector columns were answered while an idle partition was left out."""
        self.side_inputs.metrics.side_records.labels(topic=RETURNS, outcome="not_final").inc(rows)

    def close(self) -> None:
        """Close the side consumers (called by the stage at worker shutdown)."""
        self.side_inputs.close()
