"""The feature stage driven by a plain batch consumer (confluent-kafka), no Faust.

Faust's per-event machinery (PERFORMANCE.md: 170-750 µs per event) caps a Faust agent at a
few thousand events/s on this machine whatever the agent does; ``consume(n)`` hands over a
whole batch in one call. Same stage and recovery; offsets are committed only after the state
snapshots covering them are durable. ``tickcast worker --runner direct`` selects it; the
Faust agent stays the default.

Rolling checkpoints (latency): instead of pickling every dirty symbol at each checkpoint
(a 50-400 ms stall for 500 symbols on a busy 2-core machine), every loop turn snapshots a
time-proportional share of the longest-dirty symbols (:meth:`FeatureStage.snapshot_some`);
once per ``checkpoint_interval_s`` the producer is flushed and each partition is committed
up to its first tick that no written snapshot covers (:meth:`FeatureStage.commit_point`).
That commit is asynchronous: a lost one only means a longer replay, which the per-symbol
offsets skip. Shutdown still writes every dirty state and commits synchronously.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from agents.feature_stage import FeatureStage
from agents.records import RawRecord
from agents.turn_timer import TurnTimer
from tickcast.config import Settings

log = structlog.get_logger(__name__)

#: (young, middle, old) collection thresholds of the worker once started (CPython default
#: (700, 10, 10)).
_GC_THRESHOLDS = (10_000, 20, 100)


class DirectRunner:
    """Consume ``ticks`` in batches and feed :class:`FeatureStage`, committing at checkpoints."""

    def __init__(self, settings: Settings, stage: FeatureStage) -> None:
        self.settings = settings
        self.stage = stage
        self.topic = settings.topic("ticks")
        self.next_offsets: dict[int, int] = {}
        self.committed: dict[int, int] = {}
        worker_turn = stage.metrics.worker_turn_ms
        self.timer = TurnTimer(
            lambda phase, ms: worker_turn.labels(phase=phase).observe(ms),
            settings.worker_slow_turn_ms,
        )
        stage.timer = self.timer
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
        self.committed.clear()

    async def _commit(self) -> None:
        offsets = [TopicPartition(self.topic, p, o) for p, o in self.next_offsets.items()]
        if offsets:
            await asyncio.to_thread(self.consumer.commit, offsets=offsets, asynchronous=False)

    async def _commit_rolling(self, offsets: dict[int, int]) -> None:
        """Commit what moved, without waiting (librdkafka sends commits in order)."""
        moved = [
            TopicPartition(self.topic, p, o)
            for p, o in offsets.items()
            if o > self.committed.get(p, -1)
        ]
        if moved:
            self.consumer.commit(offsets=moved, asynchronous=True)
            for tp in moved:
                self.committed[tp.partition] = tp.offset

    def _next_batch(self, batch_max: int, within: float) -> list[Any]:
        """What is queued now (up to ``batch_max``); when nothing is, wait up to ``within``
        for the first record and take what came with it.

        Why not ``consume(batch_max, within)``: it waits the whole window unless the batch
        fills, an idle ``within`` added to every batch's latency even under load. Here a
        batch is whatever arrived while the previous one was processed: batches grow with
        the load by themselves, and an idle worker still sleeps in ``consume``.
        """
        messages = self.consumer.consume(batch_max, timeout=0)
        if messages:
            return messages
        first = self.consumer.consume(1, timeout=within)
        if not first or batch_max == 1:
            return first
        return first + self.consumer.consume(batch_max - 1, timeout=0)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; the stage must be open."""
        self.consumer.subscribe([self.topic], on_revoke=self._on_revoke)
        batch_max = self.settings.batch_max_events
        within = self.settings.batch_within_s
        timer = self.timer
        try:
            while not stop.is_set():
                messages = self._next_batch(batch_max, within)
                timer.start()  # the idle wait for a first record is not part of a turn
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
                timer.mark("consume")
                async with self.stage.lock:
                    if records:
                        with self.stage.metrics.stage_timer("features"):
                            await self.stage.handle(records)
                    timer.mark("handle_rest")
                    snapshots = self.stage.snapshot_some()
                    timer.mark("snapshot")
                    if self.stage.commit_due():
                        await self.stage.commit_point(self.next_offsets, self._commit_rolling)
                    timer.mark("commit")
                    await self.stage.refresh()
                    timer.mark("refresh")
                timer.end(records=len(records), snapshots=snapshots, gc=gc.get_count())
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
    # Everything loaded so far (libraries, models) lives as long as the process: keep it out
    # of the cyclic GC, whose full collections otherwise walk it (pauses of 80-300 ms seen).
    # Full collections still walk every symbol's state (~100k containers for 500 symbols,
    # 20-50 ms each) about once a second at the default thresholds; almost everything per
    # tick dies by reference counting, so collect the young generation rarely and the old
    # one far more rarely.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
    runner = DirectRunner(settings, stage)
    started = time.monotonic()
    try:
        await runner.run(stop)
    finally:
        await stage.close()
        log.info("direct runner stopped", seconds=round(time.monotonic() - started, 1))
