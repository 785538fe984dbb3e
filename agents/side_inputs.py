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
"""

from __future__ import annotations

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
from streams.codec import AvroCodec
from streams.consumers import reader
from streams.raw_record import RawRecord
from streams.validation import ValidationRules
from tickcast.config import Settings
from tickcast.errors import DependencyError, SchemaError
from tickcast.metrics import Metrics

log = structlog.get_logger(__name__)

MACRO, NEWS = "macro", "news"
_DRAIN = 10_000


class SideInputs:
    """The side tables of one worker and the consumers that fill them."""

    def __init__(self, settings: Settings, spec: SideSpec, metrics: Metrics) -> None:
        self.settings = settings
        self.spec = spec
        self.metrics = metrics
        self.state = SideState(spec)
        self.topics = {MACRO: settings.topic(MACRO), NEWS: settings.topic(NEWS)}
        self.codecs = {MACRO: AvroCodec("macro_observation"), NEWS: AvroCodec("news_item")}
        self.owned: frozenset[int] | None = None
        self.macro: Consumer | None = None
        self.news: Consumer | None = None

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
            extra["sector"] = board.symbols[symbol]
        return values

    # --- consumers --------------------------------------------------------------------------
    def open(self) -> None:
        """Read ``macro`` to its end (every worker holds all of it)."""
        group = f"{self.settings.consumer_group}-side"
        self.macro = reader(self.settings, group)
        self.news = reader(self.settings, group)
        self._catch_up(MACRO, self.macro, [0])

    def close(self) -> None:
        """Close the consumers (worker shutdown); a later batch would open them again."""
        closed = 0
        for consumer in (self.macro, self.news):
            if consumer is not None:
                consumer.close()
                closed += 1
        self.macro = self.news = None
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

    def _catch_up(
        self, kind: str, consumer: Consumer, partitions: list[int], timeout_s: float = 60.0
    ) -> None:
        """Assign ``partitions`` of ``kind`` from the beginning and apply them to their end."""
        topic = self.topics[kind]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
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

    def process(self, records: Sequence[RawRecord], load: StateLoader, now_ms: int) -> BatchOutput:
        """Take the side records that arrived (opening the consumers at first), then run."""
        if self.side_inputs.macro is None:
            self.side_inputs.open()
        self.side_inputs.poll(self.owned())
        return super().process(records, load, now_ms)

    def close(self) -> None:
        """Close the side consumers (called by the stage at worker shutdown)."""
        self.side_inputs.close()
