"""The feature agent: ``ticks`` → validation → indicators → ``features``, Redis, ``ticks.dlq``.

Per micro-batch (``noack_take``): run :class:`FeatureEngine`, enqueue feature and
dead-letter records on a fast producer, write each touched symbol's latest vector to Redis
in one pipeline. Per checkpoint (every ``checkpoint_interval_s``, on idle, and at shutdown):
flush the producer, write every dirty symbol state to the Faust table (RocksDB + changelog
topic), flush the changelog, and only then ack the events, so Faust commits offsets that
the durable state already covers. A crash replays from the last commit; per-symbol offsets
in the state make the replay skip what the state already holds (see feature_engine).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import faust
import structlog
from faust.types import EventT, StreamT

from agents.event_context import in_event
from agents.feature_engine import BatchOutput, FeatureEngine, SymbolStream
from agents.records import RawRecord
from monitoring.metrics import Metrics
from sinks.feature_blob import encode as encode_blob
from sinks.kafka_producer import BatchProducer
from sinks.redis_table import RedisTable
from streams.codec import get_codec
from tickcast.config import Settings

log = structlog.get_logger(__name__)


class FeatureStage:
    """State, outputs and checkpoints of the feature agent (one per worker process)."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        engine: FeatureEngine,
        metrics: Metrics,
    ) -> None:
        self.app = app
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.ticks_topic = settings.topic("ticks")
        self.features_topic = settings.topic("features")
        self.dlq_topic = settings.topic("ticks.dlq")
        self.table = app.Table(
            "feature-state",
            default=None,
            key_type=bytes,  # bytes types make Faust store raw keys and values
            value_type=bytes,
            partitions=settings.partitions,
            changelog_topic=app.topic(
                settings.topic("feature-state"),
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.partitions,
                compacting=True,
                deleting=False,
            ),
        )
        self.feature_codec = get_codec("FeatureVector")
        self.dlq_codec = get_codec("DeadLetter")
        self.cache: dict[str, SymbolStream] = {}
        self.dirty: dict[str, SymbolStream] = {}
        self.partition_event: dict[int, EventT] = {}
        self.pending: list[EventT] = []
        self.lock = asyncio.Lock()
        self.last_checkpoint = time.monotonic()
        self.producer: BatchProducer | None = None
        self.redis: RedisTable | None = None
        self.stream: StreamT | None = None

    def open(self) -> None:
        """Open the output connections (called when the worker starts)."""
        self.producer = BatchProducer(self.settings)
        self.redis = RedisTable.from_url(
            self.settings.redis_url, self.settings.redis_key_prefix, self.settings.feature_ttl_s
        )

    def forget(self) -> None:
        """Drop in-memory state: partitions moved, the table is the truth again."""
        self.cache.clear()
        self.dirty.clear()
        self.pending.clear()
        self.partition_event.clear()

    def _load(self, symbol: str, partition: int) -> SymbolStream | None:
        cached = self.cache.get(symbol)
        if cached is not None:
            return cached
        event = self.partition_event[partition]
        with in_event(event):
            payload = self.table.get(symbol.encode())
        if payload is None:
            return None
        state = SymbolStream.loads(payload)
        self.cache[symbol] = state
        return state

    async def handle(self, events: list[EventT]) -> BatchOutput:
        """Process one micro-batch and enqueue its outputs."""
        assert self.producer is not None
        assert self.redis is not None
        records = []
        for event in events:
            message = event.message
            self.partition_event[message.partition] = event
            records.append(
                RawRecord(message.topic, message.partition, message.offset, event.key, event.value)
            )
        now_ms = int(time.time() * 1000)
        out = self.engine.process(records, self._load, now_ms)
        produce, topic = self.producer.produce, self.features_topic
        encode = self.feature_codec.encode
        for record in out.features:
            produce(topic, record["symbol"].encode(), encode(record))
        for dead in out.dead_letters:
            produce(self.dlq_topic, dead["key"], self.dlq_codec.encode(dead))
        self.producer.poll()
        version = self.engine.version
        blobs = {
            symbol: encode_blob(rec["ts"], now_ms, version, rec["values"])
            for symbol, rec in out.latest().items()
        }
        with self.metrics.redis_op("write_features"):
            await self.redis.write_features(blobs)
        self.cache.update(out.touched)
        self.dirty.update(out.touched)
        self.pending.extend(events)
        self._count(len(events), out)
        return out

    def _count(self, n_in: int, out: BatchOutput) -> None:
        self.metrics.record_events(self.ticks_topic, "in", n_in)
        self.metrics.record_events(self.features_topic, "out", len(out.features))
        for dead in out.dead_letters:
            self.metrics.record_dead_letter(self.ticks_topic, dead["reason"])

    async def checkpoint(self) -> None:
        """Make outputs and state durable, then ack the events they cover."""
        if not self.pending or self.producer is None or self.stream is None:
            return
        await self.producer.flush_async()
        for symbol, state in self.dirty.items():
            with in_event(self.partition_event[state.partition]):
                self.table[symbol.encode()] = state.dumps()
        await self.app.producer.flush()
        ack = self.stream.ack
        for event in self.pending:
            await ack(event)
        log.debug("checkpoint", states=len(self.dirty), events=len(self.pending))
        self.dirty.clear()
        self.pending.clear()
        self.last_checkpoint = time.monotonic()

    async def maybe_checkpoint(self) -> None:
        """Checkpoint when the interval has passed."""
        elapsed = time.monotonic() - self.last_checkpoint
        if elapsed >= self.settings.checkpoint_interval_s:
            await self.checkpoint()

    async def close(self) -> None:
        """Deliver what was enqueued and close connections (worker shutdown).

        No state is written here: Faust has stopped its tables by now, and the events
        after the last checkpoint are simply replayed at the next start.
        """
        if self.producer is not None:
            await self.producer.flush_async()
        if self.redis is not None:
            await self.redis.close()


def register_feature_agent(
    app: faust.App, settings: Settings, engine: FeatureEngine, metrics: Metrics
) -> FeatureStage:
    """Declare the topics, table, agent and timers of the feature stage on ``app``."""
    stage = FeatureStage(app, settings, engine, metrics)
    ticks = app.topic(
        settings.topic("ticks"),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )

    @app.agent(ticks, name=f"{settings.consumer_group}-features")
    async def features(stream: StreamT) -> AsyncIterator[Any]:
        stage.stream = stream
        async for events in stream.noack_take(  # type: ignore[attr-defined]
            settings.batch_max_events, within=settings.batch_within_s
        ):
            async with stage.lock:
                with stage.metrics.stage_timer("features"):
                    await stage.handle(list(events))
                await stage.maybe_checkpoint()
            yield len(events)

    @app.timer(interval=max(settings.checkpoint_interval_s, 0.05))
    async def idle_checkpoint() -> None:
        async with stage.lock:
            await stage.maybe_checkpoint()

    @app.on_partitions_revoked.connect
    async def on_revoked(*_: Any, **__: Any) -> None:
        async with stage.lock:
            stage.forget()

    @app.task
    async def on_startup() -> None:
        stage.open()

    @app.on_before_shutdown.connect
    async def on_shutdown(*_: Any, **__: Any) -> None:
        await stage.close()

    return stage
