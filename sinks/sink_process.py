"""The ClickHouse sink runner: topics → decoded records → batched INSERTs → offset commits.

A plain confluent-kafka consumer (``enable.auto.commit=false``) rather than a Faust agent:
a pure sink has no state to checkpoint, and the consumer's batch ``consume`` avoids Faust's
per-event overhead. Per loop iteration the runner

1. consumes up to ``sink_batch_rows`` messages, decodes each with its topic's Avro codec
   and maps it to a row (:mod:`sinks.tables`); an undecodable record is counted as a dead
   letter and skipped, but its offset is still covered;
2. asks every sink to flush (size- or time-triggered, with backoff after failures) and
   commits, synchronously, the offsets of each batch ClickHouse confirmed — never before;
3. pauses the partitions of a topic whose sink is full (ClickHouse down) and resumes them
   once the sink has drained: memory stays bounded while the consumer keeps its group
   membership (``consume`` keeps being called).

A crash or rebalance re-delivers what was not committed; ReplacingMergeTree keys make the
repeat invisible to readers who use FINAL / argMax (``sinks.history``). Rebalancing uses the
default eager protocol: every partition is revoked, so buffers are flushed once if possible
and then dropped, and the new assignment resumes from committed offsets.

``run_id`` of predictions and outcomes comes from the Kafka header ``run_id`` when present
(backtests set it per run), otherwise from ``TICKCAST_SINK_RUN_ID`` (default ``''``: live).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, TopicPartition
from opentelemetry.trace import SpanContext, Tracer

from sinks.clickhouse_sink import ClickHouseConnector, ClickHouseSink, SinkBatch
from sinks.tables import mapping_for
from streams.codec import AvroCodec, get_codec
from streams.correlation import from_headers
from tickcast.config import Settings
from tickcast.errors import SchemaError
from tickcast.metrics import Metrics, get_metrics
from tickcast.tracing import active as active_tracing
from tickcast.tracing import batch_spans, kafka_context

log = structlog.get_logger(__name__)
RUN_ID_HEADER = "run_id"


def sink_topics(settings: Settings) -> list[str]:
    """Logical topics the sink consumes (``TICKCAST_SINK_TOPICS``)."""
    return [t.strip() for t in settings.sink_topics.split(",") if t.strip()]


def consumer_config(settings: Settings, **extra: object) -> dict[str, object]:
    """librdkafka settings of the sink consumer (manual, synchronous commits)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"{settings.consumer_group}-clickhouse-sink",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
        **extra,
    }


def header_run_id(message: Any, default: str) -> str:
    """The ``run_id`` header of a message, else ``default``."""
    for key, value in message.headers() or ():
        if key == RUN_ID_HEADER and value is not None:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return default


def traced_messages(messages: list[Any]) -> dict[str, SpanContext]:
    """The trace context of each traced message, by correlation id (else its position)."""
    traced: dict[str, SpanContext] = {}
    for message in messages:
        headers = message.headers()
        context = kafka_context(headers)
        if context is not None:
            position = f"{message.topic()}:{message.partition()}@{message.offset()}"
            traced[from_headers(headers) or position] = context
    return traced


class SinkRunner:
    """Consume the sink topics and write them to ClickHouse, effectively once."""

    def __init__(
        self,
        settings: Settings,
        *,
        topics: Sequence[str] | None = None,
        connector: ClickHouseConnector | None = None,
        metrics: Metrics | None = None,
        consumer_factory: Callable[[dict[str, object]], Any] = Consumer,
        **sink_options: Any,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or get_metrics()
        self.connector = connector or ClickHouseConnector(settings)
        self.consumer_factory = consumer_factory
        self.sinks: dict[str, ClickHouseSink] = {}
        self.codecs: dict[str, AvroCodec] = {}
        for logical in topics or sink_topics(settings):
            mapping = mapping_for(logical)
            real = settings.topic(logical)
            self.sinks[real] = ClickHouseSink(
                settings, mapping, self.connector, metrics=self.metrics, **sink_options
            )
            self.codecs[real] = get_codec(mapping.schema)
        self.consumer: Any = None
        self.paused: set[str] = set()
        self.assignment: list[TopicPartition] = []
        self.consumed = 0
        self.committed_batches = 0
        tracing = active_tracing()
        self.tracer: Tracer | None = None if tracing is None else tracing.tracer

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Open ClickHouse (when up) and subscribe."""
        for sink in self.sinks.values():
            sink.setup()
        self.consumer = self.consumer_factory(consumer_config(self.settings))
        self.consumer.subscribe(
            list(self.sinks), on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def run(self, stop: threading.Event | None = None) -> None:
        """Loop until ``stop`` is set, then flush what ClickHouse accepts and close."""
        stop = stop or threading.Event()
        self.start()
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.close()

    def close(self, drain_s: float = 10.0) -> None:
        """Flush and commit what can be written within ``drain_s``, then leave the group."""
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and any(
            s.first_at is not None for s in self.sinks.values()
        ):
            for sink in self.sinks.values():
                self._commit(sink.flush(force=True))
            time.sleep(0.05)
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        self.connector.reset()

    # --- one iteration ----------------------------------------------------------------------
    def step(self, timeout_s: float = 0.2) -> int:
        """Consume one batch, flush due sinks, commit, adjust back-pressure; returns #consumed.

        While tracing, the step is one span linked to the traces of its traced records, each
        of which gets a child span there (:func:`tickcast.tracing.batch_spans`).
        """
        messages = self.consumer.consume(self.settings.sink_batch_rows, timeout=timeout_s)
        if self.tracer is None or not messages:
            return self._step(messages)
        with batch_spans(self.tracer, "sink batch", traced_messages(messages), len(messages)):
            return self._step(messages)

    def _step(self, messages: list[Any]) -> int:
        for message in messages:
            self._handle(message)
        for sink in self.sinks.values():
            self._commit(sink.flush())
        self._apply_backpressure()
        self.consumed += len(messages)
        return len(messages)

    def _handle(self, message: Any) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consume error", error=str(error))
            return
        topic = message.topic()
        sink = self.sinks[topic]
        row = None
        try:
            record = self.codecs[topic].decode(message.value())
            row = sink.mapping.to_row(record, header_run_id(message, self.settings.sink_run_id))
        except SchemaError as exc:
            self.metrics.record_dead_letter(topic, exc.reason)
            log.warning("record skipped", topic=topic, offset=message.offset(), reason=exc.reason)
        sink.add(row, topic, message.partition(), message.offset())

    def _commit(self, batch: SinkBatch | None) -> None:
        if batch is None or not batch.offsets or self.consumer is None:
            return
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in batch.offsets.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
            self.committed_batches += 1
        except Exception as exc:  # the rows are in ClickHouse; a replay dedups
            log.warning("commit failed", error=str(exc))

    def _apply_backpressure(self) -> None:
        for topic, sink in self.sinks.items():
            parts = [tp for tp in self.assignment if tp.topic == topic]
            if sink.full and topic not in self.paused:
                if parts:
                    self.consumer.pause(parts)
                self.paused.add(topic)
                log.warning("sink full, pausing", topic=topic, rows=sink.pending_rows)
            elif topic in self.paused and sink.pending_rows < sink.batch_rows:
                if parts:
                    self.consumer.resume(parts)
                self.paused.discard(topic)
                log.info("sink drained, resuming", topic=topic)

    # --- rebalancing ------------------------------------------------------------------------
    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assignment = list(partitions)
        self.paused.clear()

    def _on_revoke(self, _consumer: Any, _partitions: list[TopicPartition]) -> None:
        for sink in self.sinks.values():
            self._commit(sink.flush(force=True))
            sink.drop_buffer()
        self.assignment = []
        self.paused.clear()


def run_sink(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run the sink (and, for embedded chDB, the read endpoint) until ``stop`` or Ctrl-C."""
    from sinks.read_endpoint import ReadEndpoint

    runner = SinkRunner(settings)
    endpoint = None
    if settings.clickhouse.startswith("chdb") and settings.clickhouse_read_port:
        endpoint = ReadEndpoint(settings, port=settings.clickhouse_read_port).start()
        log.info("read endpoint", url=endpoint.url)
    try:
        runner.run(stop)
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        if endpoint is not None:
            endpoint.close()
