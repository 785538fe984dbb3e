"""Per-symbol stream state as snapshots in a compacted Kafka topic (the stage's changelog).

A snapshot goes to the partition number of the symbol's ticks (co-partitioning), keyed by
symbol, so the worker that owns ticks partition *p* restores exactly changelog partition
*p*: it reads it from the beginning to the high watermark before touching any of its
symbols. Snapshots are written at checkpoints, after the outputs they cover are flushed and
before the offsets they cover are committed (see FeatureStage.checkpoint).

Why not a Faust Table: a Faust table can only be written from per-event stream iteration
(it finds the partition through the current-event context), which forces a changelog write
per event or private-API workarounds; per-batch snapshots through a fast producer keep
the same recovery guarantee at a fraction of the cost, and the recovery test proves it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from agents.feature_engine import SymbolStream
from streams.consumers import reader
from streams.producer import BatchProducer
from tickcast.config import Settings
from tickcast.errors import DependencyError

log = structlog.get_logger(__name__)


class ChangelogStateStore:
    """Symbol states of the partitions this worker owns, restored lazily per partition."""

    def __init__(self, settings: Settings, topic: str, producer: BatchProducer) -> None:
        self.settings = settings
        self.topic = topic
        self.producer = producer
        self.restored: set[int] = set()
        self.states: dict[str, SymbolStream] = {}

    def get(self, symbol: str, partition: int) -> SymbolStream | None:
        """The symbol's state, restoring its partition first if this worker just got it."""
        if partition not in self.restored:
            self.restore(partition)
        return self.states.get(symbol)

    def restore(self, partition: int, timeout_s: float = 60.0) -> int:
        """Read changelog partition ``partition`` to its end; returns the symbols restored."""
        consumer = reader(
            self.settings,
            f"{self.settings.consumer_group}-restore",
            **{"enable.partition.eof": True},
        )
        try:
            low, high = self._watermarks(consumer, partition, timeout_s)
            found: dict[str, bytes | None] = {}
            if high > low:
                consumer.assign([TopicPartition(self.topic, partition, low)])
                deadline = time.monotonic() + timeout_s
                position = low
                while position < high:
                    if time.monotonic() > deadline:
                        raise DependencyError(
                            "kafka", f"restore of {self.topic}[{partition}] timed out"
                        )
                    for message in consumer.consume(10_000, timeout=0.5):
                        offset, key = message.offset(), message.key()
                        if message.error() is not None or offset is None or key is None:
                            continue
                        position = offset + 1
                        found[key.decode()] = message.value()
        finally:
            consumer.close()
        for symbol, payload in found.items():
            if payload is not None:
                self.states[symbol] = SymbolStream.loads(payload)
        self.restored.add(partition)
        log.info("state restored", topic=self.topic, partition=partition, symbols=len(found))
        return len(found)

    def _watermarks(self, consumer: Consumer, partition: int, timeout_s: float) -> tuple[int, int]:
        """The partition's offsets, waiting out a broker that is restarting (bounded)."""
        retrying = Retrying(
            retry=retry_if_exception_type(KafkaException),
            wait=wait_random_exponential(multiplier=0.1, max=2.0),
            stop=stop_after_delay(timeout_s),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=10
                )
        return int(low), int(high)

    def keep(self, states: Mapping[str, SymbolStream]) -> None:
        """Hold live states in memory (a batch's new symbols included) until a snapshot."""
        self.states.update(states)

    def produce(self, symbol: str, partition: int, payload: bytes) -> None:
        """Enqueue one snapshot (durable after the producer's next successful flush)."""
        self.producer.produce(self.topic, symbol.encode(), payload, partition=partition)

    def forget(self, partitions: Iterable[int] | None = None) -> None:
        """Drop partitions this worker no longer owns (all when ``None``)."""
        if partitions is None:
            self.states.clear()
            self.restored.clear()
            return
        gone = set(partitions)
        self.restored -= gone
        self.states = {s: st for s, st in self.states.items() if st.partition not in gone}
