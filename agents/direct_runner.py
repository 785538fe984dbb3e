"""The feature stage driven by a plain batch consumer (confluent-kafka), no Faust.

Faust's per-event machinery (PERFORMANCE.md: 170-750 µs per event) caps a Faust agent at a
few thousand events/s on this machine whatever the agent does; ``consume(n)`` hands over a
whole batch in one call. Same stage, same checkpoints and recovery: offsets are committed
synchronously only after the state snapshot covering them is durable. ``tickcast worker
--runner direct`` selects it; the Faust agent stays the default.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from agents.feature_stage import FeatureStage
from agents.records import RawRecord
from tickcast.config import Settings

log = structlog.get_logger(__name__)


class DirectRunner:
    """Consume ``ticks`` in batches and feed :class:`FeatureStage`, committing at checkpoints."""

    def __init__(self, settings: Settings, stage: FeatureStage) -> None:
        self.settings = settings
        self.stage = stage
        self.topic = settings.topic("ticks")
        self.next_offsets: dict[int, int] = {}
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": settings.consumer_group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 5,
                "queued.max.messages.kbytes": 65536,
            }
        )

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Uncommitted work is replayed by the next owner (and skipped where state has it).
        self.stage.forget()
        self.next_offsets.clear()

    async def _commit(self) -> None:
        offsets = [TopicPartition(self.topic, p, o) for p, o in self.next_offsets.items()]
        if offsets:
            await asyncio.to_thread(self.consumer.commit, offsets=offsets, asynchronous=False)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; the stage must be open."""
        self.consumer.subscribe([self.topic], on_revoke=self._on_revoke)
        batch_max = self.settings.batch_max_events
        within = self.settings.batch_within_s
        try:
            while not stop.is_set():
                messages = self.consumer.consume(batch_max, timeout=within)
                records = []
                for m in messages:
                    if m.error() is not None:
                        log.warning("consume error", error=str(m.error()))
                        continue
                    partition, offset = m.partition(), m.offset()
                    if partition is None or offset is None:
                        continue
                    records.append(RawRecord(self.topic, partition, offset, m.key(), m.value()))
                    self.next_offsets[partition] = offset + 1
                async with self.stage.lock:
                    if records:
                        with self.stage.metrics.stage_timer("features"):
                            await self.stage.handle(records)
                    await self.stage.maybe_checkpoint(self._commit)
                    await self.stage.refresh()
                # consume() blocks synchronously: give the loop a turn so signal handlers
                # (SIGTERM → stop) and background tasks run even when no record arrives.
                await asyncio.sleep(0)
        finally:
            try:
                async with self.stage.lock:
                    await self.stage.checkpoint(self._commit)
            except KafkaException as exc:
                log.warning("final checkpoint failed", error=str(exc))
            self.consumer.close()


async def run_direct(settings: Settings, stage: FeatureStage, stop: asyncio.Event) -> None:
    """Open the stage and run a :class:`DirectRunner` until ``stop``."""
    stage.open()
    runner = DirectRunner(settings, stage)
    started = time.monotonic()
    try:
        await runner.run(stop)
    finally:
        await stage.close()
        log.info("direct runner stopped", seconds=round(time.monotonic() - started, 1))
