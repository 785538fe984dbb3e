"""A fast, non-blocking Kafka producer for a stage's outputs (confluent-kafka).

``produce`` only enqueues (docs/performance.md: ~280k msgs/s); ``flush`` waits for delivery and
is called once per checkpoint, so a stage never awaits a message at a time. The partitioner
is murmur2, the Java client's and aiokafka's, so a symbol lands in the same partition
number on every topic (co-partitioning).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

from tickcast.config import Settings
from tickcast.errors import DependencyError, TickcastError


class DeliveryFailed(TickcastError):
    """Kafka refused records for good (e.g. too large, topic gone): not worth retrying."""


def producer_config(settings: Settings, **extra: object) -> dict[str, object]:
    """librdkafka settings shared by every tickcast producer."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "linger.ms": settings.linger_ms,
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "queue.buffering.max.messages": 1_000_000,
        **extra,
    }


class BatchProducer:
    """Enqueue many records, flush once; delivery failures surface at flush."""

    def __init__(self, settings: Settings, **extra: object) -> None:
        self._producer = Producer(producer_config(settings, **extra))
        self._errors: list[str] = []

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._errors.append(str(err))

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int = -1,
    ) -> None:
        """Enqueue one record (``partition=-1``: by key), waiting for room when full."""
        while True:
            try:
                self._producer.produce(
                    topic,
                    value,
                    key,
                    partition=partition,
                    on_delivery=self._on_delivery,
                    headers=list(headers) if headers else None,
                )
                return
            except BufferError:
                self._producer.poll(0.05)

    def poll(self) -> None:
        """Serve delivery callbacks without blocking."""
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything enqueued is delivered.

        Raises :class:`DeliveryFailed` when the broker refused a record for good (nothing
        to wait for), :class:`DependencyError` when records are still queued at the
        time-out (the broker is away: flushing again later may succeed).
        """
        remaining = self._producer.flush(timeout)
        errors, self._errors = self._errors, []
        if errors:
            raise DeliveryFailed(f"{len(errors)} record(s) refused by Kafka: {errors[:3]}")
        if remaining:
            raise DependencyError(
                "kafka", f"{remaining} records undelivered after {timeout} s", "is the broker up?"
            )

    async def flush_async(self, timeout: float = 30.0) -> None:
        """:meth:`flush` in a worker thread, so the event loop keeps running."""
        await asyncio.get_running_loop().run_in_executor(None, self.flush, timeout)
