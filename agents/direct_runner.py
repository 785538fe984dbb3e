"""The worker's default runner: the feature stage on a plain batch consumer group.

Faust's per-event machinery (170-750 µs per event) caps a Faust agent at a few thousand
events/s on this machine whatever the agent does; ``consume(n)`` hands over a whole batch
in one call. ``tickcast worker`` runs this runner (``--runner faust`` the Faust adapter).

Rolling checkpoints (latency): instead of pickling every dirty symbol at each checkpoint
(a 50-400 ms stall for 500 symbols on a busy 2-core machine), every loop turn snapshots a
time-proportional share of the longest-dirty symbols (:meth:`FeatureStage.snapshot_some`);
once per ``checkpoint_interval_s`` :meth:`FeatureStage.checkpoint` applies the one commit
rule. Its commits are asynchronous: a lost one only means a longer replay, which the
per-symbol offsets skip. A clean stop (SIGTERM) snapshots everything and commits
synchronously.

Faults:
- a dependency down (Redis, the broker): the stage waits it out with backoff; meanwhile
  :meth:`DirectRunner._wait_paused` pauses every assigned partition and keeps polling, so the
  worker stays in its group, reads nothing new (bounded memory) and serves rebalances;
- partitions revoked during such a wait: the batch in hand is abandoned (the next owner
  replays it from the last commit);
- any other error: the loop ends with it, nothing more is committed (no final checkpoint),
  and the process exits non-zero with the message.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import structlog
from confluent_kafka import KafkaException, TopicPartition

from agents.dependencies import BatchAbandoned, StopRequested
from agents.feature_stage import FeatureStage
from agents.held_records import HeldRecords
from agents.turn_timer import TurnTimer
from streams.consumers import group_consumer
from streams.raw_record import RawRecord
from tickcast.config import Settings
from tickcast.errors import TickcastError

log = structlog.get_logger(__name__)


class WorkerFailed(TickcastError):
    """The worker met an error it must not retry (the CLI prints it and exits non-zero)."""


#: (young, middle, old) collection thresholds of the worker once started (CPython default
#: (700, 10, 10)).
_GC_THRESHOLDS = (10_000, 20, 100)


class DirectRunner:
    """Consume ``ticks`` in batches and feed :class:`FeatureStage`, committing at checkpoints."""

    def __init__(self, settings: Settings, stage: FeatureStage) -> None:
        self.settings = settings
        self.stage = stage
        self.topic = settings.topic("ticks")
        self.committed: dict[int, int] = {}
        self.assigned: set[int] = set()
        self.paused: list[TopicPartition] = []
        self.held = HeldRecords(settings.side_sector_buffer)
        """Records the engine left for later (sector columns not final: agents.held_records)."""
        self.full: set[int] = set()
        """Partitions paused because :attr:`held` holds ``side_sector_buffer`` of their records."""
        self.busy = False
        """True while a batch or checkpoint is in hand (a revoke then abandons it)."""
        worker_turn = stage.metrics.worker_turn_ms
        self.timer = TurnTimer(
            lambda phase, ms: worker_turn.labels(phase=phase).observe(ms),
            settings.worker_slow_turn_ms,
        )
        stage.timer = self.timer
        stage.assignment = lambda: self.assigned
        stage.guard.sleep = self._wait_paused
        self.consumer = group_consumer(
            settings,
            settings.consumer_group,
            **{"fetch.wait.max.ms": 5, "queued.max.messages.kbytes": 65536},
        )

    # --- group membership -------------------------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned = {tp.partition for tp in partitions}
        log.info("partitions assigned", partitions=sorted(self.assigned))

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Uncommitted work is replayed by the next owner (and skipped where state has it).
        self.stage.forget()
        self.held.drop(tp.partition for tp in partitions)
        self.full -= {tp.partition for tp in partitions}
        self.committed.clear()
        self.assigned = set()
        self.paused = []
        if self.busy:
            self.stage.guard.abandoned = True

    async def _wait_paused(self, seconds: float) -> None:
        """Wait ``seconds`` between retries with every partition paused, polling meanwhile.

        Polling keeps the worker in its group (``max.poll.interval.ms``) and runs rebalance
        callbacks; a record that still arrives (a partition assigned during the wait) is
        sought back and its partition paused too, so nothing is read past the batch in hand.
        """
        consumer = self.consumer
        if not self.paused:
            self.paused = list(consumer.assignment())
            if self.paused:
                consumer.pause(self.paused)
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            for message in consumer.consume(100, timeout=max(0.0, min(left, 0.2))):
                topic, partition, offset = message.topic(), message.partition(), message.offset()
                if (
                    message.error() is None
                    and topic
                    and partition is not None
                    and offset is not None
                ):
                    tp = TopicPartition(topic, partition, offset)
                    consumer.seek(tp)
                    consumer.pause([tp])
                    self.paused.append(tp)
            await asyncio.sleep(0)  # let signal handlers run
            if left <= 0 or self.stage.guard.abandoned or self.stage.guard.stopping():
                return

    def _resume(self) -> None:
        if self.paused:
            owned = [
                tp for tp in self.paused if tp.partition in self.assigned - self.full
            ]  # a partition with a full buffer stays paused (_hold)
            if owned:
                self.consumer.resume(owned)
            self.paused = []

    # --- commits ----------------------------------------------------------------------------
    async def _commit_rolling(self, offsets: dict[int, int]) -> None:
        """Commit what moved, without waiting (librdkafka sends commits in order)."""
        moved = [
            TopicPartition(self.topic, p, o)
            for p, o in offsets.items()
            if p in self.assigned and o > self.committed.get(p, -1)
        ]
        if moved:
            self.consumer.commit(offsets=moved, asynchronous=True)
            for tp in moved:
                self.committed[tp.partition] = tp.offset

    async def _commit_sync(self, offsets: dict[int, int]) -> None:
        owned = [TopicPartition(self.topic, p, o) for p, o in offsets.items() if p in self.assigned]
        if owned:
            await asyncio.to_thread(self.consumer.commit, offsets=owned, asynchronous=False)

    # --- the loop ---------------------------------------------------------------------------
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

    def _records(self, messages: list[Any]) -> list[RawRecord]:
        records = []
        traced = self.stage.tracer is not None  # headers only matter while tracing
        for m in messages:
            if m.error() is not None:
                log.warning("consume error", error=str(m.error()))
                continue
            partition, offset = m.partition(), m.offset()
            if partition is None or offset is None:
                continue
            headers = m.headers() if traced else None
            records.append(RawRecord(self.topic, partition, offset, m.key(), m.value(), 0, headers))
        return records

    async def _turn(self, records: list[RawRecord]) -> int:
        """One batch, the turn's snapshots, and the checkpoint when it is due."""
        stage, timer = self.stage, self.timer
        if records:
            with stage.metrics.stage_timer("features"):
                await stage.handle(records)
            held = stage.engine.held
            self._hold(records, held)
            if held and all(r.offset >= held.get(r.partition, r.offset + 1) for r in records):
                await asyncio.sleep(0.05)  # waiting for other partitions: do not spin
        timer.mark("handle_rest")
        snapshots = stage.snapshot_some()
        timer.mark("snapshot")
        if stage.commit_due():
            await stage.checkpoint(self._commit_rolling)
        timer.mark("commit")
        await stage.refresh()
        timer.mark("refresh")
        return snapshots

    def _hold(self, records: list[RawRecord], held: dict[int, int]) -> None:
        """Keep what the engine left (not final yet) for the next turn; pause a partition
        whose buffer is full, resume it once it is not (agents.held_records)."""
        self.held.keep(records, held)
        over = self.held.over() & self.assigned
        pause = [TopicPartition(self.topic, p) for p in over - self.full]
        resume = [TopicPartition(self.topic, p) for p in (self.full - over) & self.assigned]
        try:
            if pause:
                self.consumer.pause(pause)
            if resume:
                self.consumer.resume(resume)
        except KafkaException as exc:  # revoked meanwhile: the rebalance drops its buffer
            log.info("pause or resume skipped", error=str(exc)[:200])
        if pause or resume:
            log.debug("held records", paused=sorted(over), records=len(self.held))
        self.full = over
        self.stage.metrics.side_sector_held.set(len(self.held))

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; the stage must be open. Errors end the loop uncommitted."""
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.stage.guard.stopping = stop.is_set
        batch_max = self.settings.batch_max_events
        within = self.settings.batch_within_s
        timer = self.timer
        clean = False
        try:
            while not stop.is_set():
                messages = self._next_batch(batch_max, within)
                timer.start()  # the idle wait for a first record is not part of a turn
                records = self.held.with_new(self._records(messages))
                timer.mark("consume")
                async with self.stage.lock:
                    self.busy = True
                    try:
                        snapshots = await self._turn(records)
                    except BatchAbandoned:
                        log.warning("batch abandoned: partitions revoked", records=len(records))
                        snapshots = 0
                    finally:
                        self.busy = False
                        self.stage.guard.abandoned = False
                        self._resume()
                timer.end(records=len(records), snapshots=snapshots, gc=gc.get_count())
                # consume() blocks synchronously: give the loop a turn so signal handlers
                # (SIGTERM → stop) and background tasks run even when no record arrives.
                await asyncio.sleep(0)
            clean = True
        except StopRequested:
            log.warning("stopped while a dependency was down: the batch in hand is not committed")
        finally:
            if clean:
                await self._final_checkpoint()
            self.consumer.close()

    async def _final_checkpoint(self) -> None:
        """Snapshot everything and commit synchronously, giving a dead broker 30 s at most."""
        stage = self.stage
        stage.guard.stopping = _deadline(30.0)
        try:
            async with stage.lock:
                await stage.checkpoint(self._commit_sync, full=True)
        except (KafkaException, StopRequested) as exc:
            log.warning("final checkpoint failed: replayed at the next start", error=str(exc))


def _deadline(seconds: float) -> Any:
    end = time.monotonic() + seconds
    return lambda: time.monotonic() > end


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
    except Exception as exc:  # not retryable: say so once, exit non-zero (tickcast.cli)
        log.critical("worker stopped by an error it cannot retry", error=repr(exc)[:500])
        raise WorkerFailed(
            f"stopped by an error it cannot retry: {exc!r:.300}; nothing after the last "
            "commit was committed, the next start replays it"
        ) from exc
    finally:
        await stage.close()
        log.info("direct runner stopped", seconds=round(time.monotonic() - started, 1))
